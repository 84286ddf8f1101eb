"""Pools, members and flatten requests in the ops panel.

Every write calls pools.services: creating or editing a pool upserts its
config, deleting one archives it, members are added, updated and removed by
their services, and enable / pause / resume / archive / restore and the
emergency kill and flatten are lifecycle actions (ops only, SPEC Part B.12).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import LogEntry
from django.core.exceptions import PermissionDenied
from django.db.models import ForeignKey, QuerySet
from django.forms import ModelChoiceField, ModelForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from common.actors import Actor
from common.admin import (
    Lifecycle,
    ReadOnlyModelAdmin,
    ServiceModelAdmin,
    admin_actor,
    render_action_page,
)
from common.auth import Role
from common.exceptions import Conflict
from participants.enums import ParticipantState
from participants.models import Participant
from pools import services
from pools.enums import PoolState
from pools.models import FlattenRequest, PoolConfig, PoolMember
from pools.selectors import live_status_get, pools_not_halted


def _halted_selected(pools: Sequence[PoolConfig]) -> bool:
    return any(pool.state == PoolState.HALTED for pool in pools)


def _restore(pool: PoolConfig, actor: Actor, text: str) -> object:
    if pool.archived_at is None:
        raise Conflict(f"pool {pool.symbol} is not archived")
    return services.pool_create_or_update(symbol=pool.symbol, config={}, actor=actor)


POOL_LIFECYCLES = (
    Lifecycle(
        name="enable",
        label="Enable",
        role=Role.OPS,
        run=lambda pool, actor, text: services.pool_enable(pool=pool, actor=actor),
    ),
    Lifecycle(
        name="pause",
        label="Pause",
        role=Role.OPS,
        run=lambda pool, actor, text: services.pool_pause(pool=pool, actor=actor),
    ),
    Lifecycle(
        name="resume",
        label="Resume",
        role=Role.OPS,
        run=lambda pool, actor, text: services.pool_resume(pool=pool, actor=actor, note=text),
        text_field="note",
        text_label="Review note (required to resume a HALTED pool)",
        text_needed=_halted_selected,
    ),
    Lifecycle(
        name="unwind",
        label="Unwind (reducing orders only)",
        role=Role.OPS,
        run=lambda pool, actor, text: services.pool_unwind(pool=pool, actor=actor, note=text),
        text_field="note",
        text_label="Note (required: why, and what the desk expects)",
    ),
    Lifecycle(
        name="archive",
        label="Archive",
        role=Role.OPS,
        run=lambda pool, actor, text: services.pool_archive(pool=pool, actor=actor),
        on_change_page=False,  # the change page's Delete button archives
    ),
    Lifecycle(name="restore", label="Restore from the archive", role=Role.OPS, run=_restore),
)


class ArchivedFilter(admin.SimpleListFilter):
    title = "archived"
    parameter_name = "archived"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "Live"), ("yes", "Archived")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(archived_at__isnull=self.value() == "no")
        return queryset


class EmergencyForm(forms.Form):
    reason = forms.CharField(
        label="Reason (recorded in every pool's audit row)",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )


EMERGENCY_KINDS = {
    "kill": (
        "Emergency kill",
        "Halt ALL pools now: every pool not already HALTED goes HALTED, its order gate "
        "closes and every known order is cancelled. Each pool then needs a review note "
        "to resume.",
    ),
    "flatten": (
        "Emergency flatten",
        "Halt ALL pools, and also ask the venue to cancel every order of every member "
        "account on every symbol. No order is placed; positions are left for a person.",
    ),
}

STATE_FIELDS = (
    "state",
    "state_reason",
    "state_changed_at",
    "state_changed_by",
    "archived_at",
    "created_at",
    "updated_at",
)


@admin.register(PoolConfig)
class PoolConfigAdmin(ServiceModelAdmin):
    audit_entity_type = "pool"
    lifecycles = POOL_LIFECYCLES
    list_display = (
        "symbol",
        "state",
        "enabled",
        "is_archived",
        "gamma",
        "kappa",
        "tau",
        "num_levels",
        "order_size_usdt",
        "max_pool_position_usdt",
        "max_pool_loss_usdt",
        "state_changed_at",
        "state_changed_by",
    )
    list_filter = ("state", "enabled", ArchivedFilter, "check_staleness")
    search_fields = ("symbol", "state_reason", "state_changed_by")
    readonly_fields = (*STATE_FIELDS, "members_table", "audit_history")
    fieldsets = (
        (None, {"fields": ("symbol", "enabled")}),
        ("Avellaneda-Stoikov", {"fields": ("gamma", "kappa", "tau", "vol_lookback_seconds")}),
        (
            "Quotes",
            {
                "fields": (
                    "num_levels",
                    "level_spacing_bps",
                    "min_spread_bps",
                    "max_spread_bps",
                    "order_size_usdt",
                    "quote_interval_ms",
                    "price_threshold_bps",
                )
            },
        ),
        (
            "Risk limits",
            {
                "fields": (
                    "max_pool_position_usdt",
                    "max_pool_loss_usdt",
                    "check_staleness",
                    "staleness_threshold_ms",
                )
            },
        ),
        (
            "Inventory and unwinding",
            {
                "fields": (
                    "target_inventory",
                    "unwind_band_bps",
                    "unwind_max_loss_usdt",
                    "unwind_time_limit_s",
                )
            },
        ),
        ("Lifecycle", {"fields": STATE_FIELDS}),
        ("Members", {"fields": ("members_table",)}),
        ("History", {"fields": ("audit_history",)}),
    )
    change_list_template = "admin/pools/poolconfig/change_list.html"

    def audit_entity_id(self, obj: PoolConfig) -> str:
        return obj.symbol

    @admin.display(boolean=True, description="archived")
    def is_archived(self, obj: PoolConfig) -> bool:
        return obj.archived_at is not None

    @admin.display(description="Members")
    def members_table(self, obj: PoolConfig) -> SafeString | str:
        """The members, and from the worker's live status (when it reports) each
        one's position, today's maker volume and fill deficit (fair queue
        position: the member furthest behind its share of fills stands first)."""
        if obj.pk is None:
            return "-"
        members = obj.members.select_related("participant")
        if not members:
            return "No members."
        live = live_status_get(symbols=[obj.symbol]).get(obj.symbol) or {}
        views = {m["participant_id"]: m for m in live.get("members", [])}
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td>'
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    reverse("admin:pools_poolmember_change", args=[m.pk]),
                    m.participant,
                    m.participant.state,
                    m.weight,
                    m.max_position_usdt,
                    *(
                        views.get(str(m.participant_id), {}).get(key, "-")
                        for key in ("position", "day_maker_size", "fill_deficit")
                    ),
                )
                for m in members
            ),
        )
        return format_html(
            "<table><thead><tr><th>Participant</th><th>State</th><th>Weight</th>"
            "<th>Max position (USDT)</th><th>Position (live)</th>"
            "<th>Maker volume today</th><th>Fill deficit</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

    def get_fieldsets(self, request: HttpRequest, obj: PoolConfig | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return [fs for fs in fieldsets if fs[0] not in ("Lifecycle", "Members", "History")]
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: PoolConfig | None = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if obj is None else ("symbol", *fields)

    # An archived pool is read-only until restored; only ops change pools.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and self.has_ops_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: PoolConfig | None = None) -> bool:
        if obj is not None and obj.archived_at is not None:
            return False
        return super().has_change_permission(request, obj) and self.has_ops_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: PoolConfig | None = None) -> bool:
        if obj is not None and obj.archived_at is not None:
            return False
        return super().has_delete_permission(request, obj) and self.has_ops_permission(request)

    def lifecycle_available(self, obj: PoolConfig, lifecycle: Lifecycle) -> bool:
        if lifecycle.name == "restore":
            return obj.archived_at is not None
        return obj.archived_at is None and super().lifecycle_available(obj, lifecycle)

    def save_model(
        self, request: HttpRequest, obj: PoolConfig, form: ModelForm[Any], change: bool
    ) -> None:
        config = {
            name: form.cleaned_data[name]
            for name in services.POOL_CONFIG_FIELDS
            if name in form.cleaned_data and (not change or name in form.changed_data)
        }
        if change:
            services.pool_update(pool=obj, config=config, actor=admin_actor(request))
            return
        pool, _ = services.pool_create_or_update(
            symbol=obj.symbol, config=config, actor=admin_actor(request)
        )
        obj.pk = pool.pk
        obj._state.adding = False

    # Deleting a pool archives it: pools with history are never hard-deleted.
    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        if self.has_ops_permission(request):
            actions["emergency_kill"] = (
                _emergency_kill_action,
                "emergency_kill",
                "Emergency kill: halt ALL pools (not only the selected)…",
            )
        return actions

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        return [str(obj) for obj in objs], {}, set(), []

    def delete_model(self, request: HttpRequest, obj: PoolConfig) -> None:
        services.pool_archive(pool=obj, actor=admin_actor(request))

    def log_deletions(self, request: HttpRequest, queryset: Any) -> list[LogEntry]:
        return [self.log_change(request, obj, "Archived.") for obj in queryset]

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> HttpResponse:
        messages.success(
            request, f"The pool {obj_display} was archived; its history and members are kept."
        )
        return HttpResponseRedirect(
            reverse("admin:pools_poolconfig_changelist", current_app=self.admin_site.name)
        )

    # --- emergency controls (SPEC Part B.13) ---------------------------------

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "emergency/<str:kind>/",
                self.admin_site.admin_view(self.emergency_view),
                name="pools_poolconfig_emergency",
            ),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        urls = {}
        if self.has_ops_permission(request):
            urls = {
                kind: reverse(
                    "admin:pools_poolconfig_emergency",
                    args=[kind],
                    current_app=self.admin_site.name,
                )
                for kind in EMERGENCY_KINDS
            }
        return super().changelist_view(request, {**(extra_context or {}), "emergency_urls": urls})

    def emergency_view(self, request: HttpRequest, kind: str) -> HttpResponse:
        if kind not in EMERGENCY_KINDS:
            raise Http404
        if not self.has_ops_permission(request):
            raise PermissionDenied
        title, explanation = EMERGENCY_KINDS[kind]
        changelist = reverse("admin:pools_poolconfig_changelist", current_app=self.admin_site.name)
        form = EmergencyForm(data=request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            actor = admin_actor(request)
            reason = form.cleaned_data["reason"]
            if kind == "kill":
                halted = services.emergency_kill(actor=actor, reason=reason)
                note = ""
            else:
                flatten, halted = services.emergency_flatten(actor=actor, reason=reason)
                note = f" Flatten request #{flatten.pk} recorded; the workers carry it out."
            names = ", ".join(pool.symbol for pool in halted) or "none (all were HALTED already)"
            messages.warning(request, f"{title}: halted {len(halted)} pools: {names}.{note}")
            return HttpResponseRedirect(changelist)
        return render_action_page(
            request,
            self,
            title=f"{title}: all pools",
            question=explanation,
            warning="This acts on every pool, whatever is selected.",
            objects=list(pools_not_halted()),
            form=form,
            submit_label=f"{title} now",
            cancel_url=changelist,
        )


def _emergency_kill_action(
    model_admin: PoolConfigAdmin, request: HttpRequest, queryset: QuerySet[PoolConfig]
) -> HttpResponse:
    """From the changelist's action menu: to the emergency page (it needs a reason)."""
    return HttpResponseRedirect(
        reverse(
            "admin:pools_poolconfig_emergency",
            args=["kill"],
            current_app=model_admin.admin_site.name,
        )
    )


def _remove(member: PoolMember, actor: Actor, text: str) -> object:
    services.member_remove(member=member, actor=actor)
    return None


@admin.register(PoolMember)
class PoolMemberAdmin(ServiceModelAdmin):
    audit_entity_type = "member"
    lifecycles = (
        Lifecycle(
            name="remove",
            label="Remove from the pool",
            role=Role.OPS,
            run=_remove,
            confirm=True,
            on_change_page=False,  # the change page's Delete button removes
        ),
    )
    list_display = (
        "id",
        "pool",
        "participant",
        "participant_state",
        "weight",
        "max_position_usdt",
        "created_at",
        "updated_at",
    )
    list_filter = ("pool", "participant__state", "participant__tier")
    search_fields = (
        "pool__symbol",
        "participant__name",
        "participant__short_id",
        "participant__account_id",
    )
    list_select_related = ("pool", "participant")
    readonly_fields = ("created_at", "updated_at", "audit_history")

    @admin.display(description="participant state", ordering="participant__state")
    def participant_state(self, obj: PoolMember) -> str:
        return str(obj.participant.state)

    def get_fields(self, request: HttpRequest, obj: PoolMember | None = None) -> Any:
        if obj is None:
            return ("pool", "participant", "weight", "max_position_usdt")
        return (
            "pool",
            "participant",
            "weight",
            "max_position_usdt",
            "created_at",
            "updated_at",
            "audit_history",
        )

    def get_readonly_fields(self, request: HttpRequest, obj: PoolMember | None = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if obj is None else ("pool", "participant", *fields)

    def formfield_for_foreignkey(
        self,
        db_field: ForeignKey,
        request: HttpRequest,
        **kwargs: Any,
    ) -> ModelChoiceField | None:
        # Only live pools and participants that may still join one.
        if db_field.name == "pool":
            kwargs["queryset"] = PoolConfig.objects.filter(archived_at__isnull=True)
        elif db_field.name == "participant":
            kwargs["queryset"] = Participant.objects.exclude(state=ParticipantState.TERMINATED)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and self.has_ops_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: PoolMember | None = None) -> bool:
        return super().has_change_permission(request, obj) and self.has_ops_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: PoolMember | None = None) -> bool:
        return super().has_delete_permission(request, obj) and self.has_ops_permission(request)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(
        self, request: HttpRequest, obj: PoolMember, form: ModelForm[Any], change: bool
    ) -> None:
        actor = admin_actor(request)
        if change:
            updates = {
                name: form.cleaned_data[name]
                for name in services.MEMBER_FIELDS
                if name in form.changed_data
            }
            services.member_update(member=obj, updates=updates, actor=actor)
            return
        member = services.member_add(
            pool=form.cleaned_data["pool"],
            participant=form.cleaned_data["participant"],
            weight=form.cleaned_data["weight"],
            max_position_usdt=form.cleaned_data["max_position_usdt"],
            actor=actor,
        )
        obj.pk = member.pk
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: PoolMember) -> None:
        services.member_remove(member=obj, actor=admin_actor(request))


@admin.register(FlattenRequest)
class FlattenRequestAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "status", "requested_by", "reason", "requested_at", "completed_at")
    list_filter = ("status", "requested_at")
    search_fields = ("requested_by", "reason")
