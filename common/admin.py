"""The ops/finance panel's shared parts (SPEC Part B.12): roles as groups,
lifecycle actions that only ever call the services, each entity's audit
history, and the read-only admins of the audit log and the outbox.

A lifecycle action is declared once (a `Lifecycle`) and offered twice: as an
action on the changelist and as a button on the change page. Both run the
service once per object, each in its own transaction, and report what was
done and what the service refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django_fsm import can_proceed

from common.actors import Actor, ActorKind
from common.auth import Role
from common.exceptions import DomainError
from common.models import AuditLog, OutboxEvent

ADMIN_ROLES = (Role.OPS, Role.FINANCE, Role.VIEWER)
AUDIT_HISTORY_ROWS = 50


def user_has_role(user: Any, role: Role) -> bool:
    """Whether an admin-panel user holds a role: superusers hold every role,
    others hold the roles of the groups they are in."""
    if not getattr(user, "is_active", False):
        return False
    if getattr(user, "is_superuser", False):
        return True
    roles: frozenset[str] | None = getattr(user, "_mms_admin_roles", None)
    if roles is None:
        roles = frozenset(user.groups.values_list("name", flat=True))
        user._mms_admin_roles = roles
    return role.value in roles


def admin_actor(request: HttpRequest) -> Actor:
    return Actor(request.user.get_username(), ActorKind.USER)


def _always(objects: Sequence[Any]) -> bool:
    return True


@dataclass(frozen=True)
class Lifecycle:
    """One lifecycle action of an entity, run by people holding `role`.

    `run(obj, actor, text)` calls the service. With a `text_field` (a note, a
    reason, a payout reference) the person is asked for it on an intermediate
    page whenever `text_needed(objects)` says so, or always with `confirm`.
    """

    name: str
    label: str
    role: Role
    run: Callable[[Any, Actor, str], object]
    # The FSM transition whose guard decides whether the change page offers it.
    transition: str = ""
    text_field: str = ""
    text_label: str = ""
    text_needed: Callable[[Sequence[Any]], bool] = _always
    text_max_length: int = 2000
    confirm: bool = False
    on_change_page: bool = True

    def needs_text(self, objects: Sequence[Any]) -> bool:
        return bool(self.text_field) and self.text_needed(objects)


class LifecycleForm(forms.Form):
    """The intermediate page's form: the one text the action needs, if any."""

    def __init__(self, lifecycle: Lifecycle, *, required: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lifecycle = lifecycle
        if lifecycle.text_field:
            short = lifecycle.text_max_length <= 200
            self.fields[lifecycle.text_field] = forms.CharField(
                label=lifecycle.text_label or lifecycle.text_field.replace("_", " ").capitalize(),
                required=required,
                max_length=lifecycle.text_max_length,
                widget=forms.TextInput(attrs={"size": 60})
                if short
                else forms.Textarea(attrs={"rows": 3, "cols": 60}),
            )

    def text(self) -> str:
        field = self.lifecycle.text_field
        return str(self.cleaned_data.get(field, "")) if field else ""


def report(
    request: HttpRequest, label: str, done: Sequence[str], refused: Sequence[tuple[str, str]]
) -> None:
    """One success message for what was done, one error per refusal."""
    if done:
        messages.success(request, f"{label}: done for {', '.join(done)}.")
    for name, why in refused:
        messages.error(request, f"{label} refused for {name}: {why}")
    if not done and not refused:
        messages.warning(request, f"{label}: nothing to do.")


def render_action_page(
    request: HttpRequest,
    model_admin: admin.ModelAdmin,
    *,
    title: str,
    question: str,
    objects: Sequence[Any],
    form: forms.Form,
    submit_label: str,
    cancel_url: str,
    action_name: str = "",
    warning: str = "",
) -> TemplateResponse:
    """The intermediate page: what will happen to which objects, and the form."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "subtitle": None,
        "question": question,
        "warning": warning,
        "objects": objects,
        "form": form,
        "submit_label": submit_label,
        "cancel_url": cancel_url,
        "action_name": action_name,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
        "opts": model_admin.opts,
        "media": model_admin.media + form.media,
    }
    return TemplateResponse(request, "admin/mms/action_form.html", context)


class AuditHistoryMixin:
    """A read-only 'Audit history' field listing the entity's AuditLog rows."""

    audit_entity_type = ""

    def audit_entity_id(self, obj: Any) -> str:
        return str(obj.pk)

    @admin.display(description="Audit history")
    def audit_history(self, obj: Any) -> SafeString | str:
        if obj is None or obj.pk is None:
            return "-"
        entity_id = self.audit_entity_id(obj)
        rows = AuditLog.objects.filter(
            entity_type=self.audit_entity_type, entity_id=entity_id
        ).order_by("-created_at", "-id")[:AUDIT_HISTORY_ROWS]
        all_url = (
            reverse("admin:common_auditlog_changelist")
            + "?"
            + urlencode({"entity_type": self.audit_entity_type, "entity_id": entity_id})
        )
        if not rows:
            return "No audited change yet."
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    row.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                    row.action,
                    _state_change(row),
                    row.actor,
                    row.actor_kind,
                    _changes_text(row.changes),
                    row.reason,
                )
                for row in rows
            ),
        )
        return format_html(
            '<table class="mms-audit"><thead><tr><th>When</th><th>Action</th><th>State</th>'
            "<th>Actor</th><th>Changes</th><th>Reason</th></tr></thead><tbody>{}</tbody>"
            '</table><p><a href="{}">All audit rows of this {}</a></p>',
            body,
            all_url,
            self.audit_entity_type,
        )


def _state_change(row: AuditLog) -> str:
    if row.from_state or row.to_state:
        return f"{row.from_state or '∅'} → {row.to_state or '∅'}"
    return ""


def _changes_text(changes: dict[str, Any]) -> str:
    return "; ".join(f"{name}: {old} → {new}" for name, (old, new) in changes.items())


class ServiceModelAdmin(AuditHistoryMixin, admin.ModelAdmin):
    """A ModelAdmin whose writes all go through the services.

    Subclasses call the services from save_model / delete_model and declare
    `lifecycles`. A service refusal (DomainError) becomes an error message on
    the page the person came from, never a server error.
    """

    lifecycles: tuple[Lifecycle, ...] = ()
    change_form_template = "admin/mms/change_form.html"

    # Roles as admin permissions, usable in @admin.action(permissions=[...]).
    def has_ops_permission(self, request: HttpRequest) -> bool:
        return user_has_role(request.user, Role.OPS)

    def has_finance_permission(self, request: HttpRequest) -> bool:
        return user_has_role(request.user, Role.FINANCE)

    # --- lifecycle actions on the changelist -------------------------------

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions: dict[str, Any] = super().get_actions(request)
        for lifecycle in self.lifecycles:
            if user_has_role(request.user, lifecycle.role):
                actions[lifecycle.name] = (
                    self._changelist_action(lifecycle),
                    lifecycle.name,
                    lifecycle.label,
                )
        return actions

    def _changelist_action(self, lifecycle: Lifecycle) -> Callable[..., HttpResponse | None]:
        def action(
            model_admin: ServiceModelAdmin, request: HttpRequest, queryset: QuerySet[Any]
        ) -> HttpResponse | None:
            return model_admin.run_changelist_action(request, queryset, lifecycle)

        action.__name__ = lifecycle.name
        return action

    def run_changelist_action(
        self, request: HttpRequest, queryset: QuerySet[Any], lifecycle: Lifecycle
    ) -> HttpResponse | None:
        if not user_has_role(request.user, lifecycle.role):
            raise PermissionDenied
        objects = list(queryset)
        required = lifecycle.needs_text(objects)
        if required or lifecycle.confirm:
            form = LifecycleForm(
                lifecycle, required=required, data=request.POST if "apply" in request.POST else None
            )
            if not form.is_valid():
                return render_action_page(
                    request,
                    self,
                    title=f"{lifecycle.label}: {self.opts.verbose_name_plural}",
                    question=f"{lifecycle.label} for these {self.opts.verbose_name_plural}?",
                    objects=objects,
                    form=form,
                    submit_label=lifecycle.label,
                    cancel_url=request.get_full_path(),
                    action_name=lifecycle.name,
                )
            text = form.text()
        else:
            text = ""
        self.apply_lifecycle(request, lifecycle, objects, text)
        return None

    def apply_lifecycle(
        self, request: HttpRequest, lifecycle: Lifecycle, objects: Iterable[Any], text: str
    ) -> None:
        actor = admin_actor(request)
        done: list[str] = []
        refused: list[tuple[str, str]] = []
        for obj in objects:
            try:
                lifecycle.run(obj, actor, text)
            except DomainError as exc:
                refused.append((str(obj), exc.message))
            else:
                done.append(str(obj))
        report(request, lifecycle.label, done, refused)

    # --- lifecycle buttons on the change page -------------------------------

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/lifecycle/<str:name>/",
                self.admin_site.admin_view(self.lifecycle_view),
                name="{}_{}_lifecycle".format(*info),
            ),
            *super().get_urls(),
        ]

    def lifecycle_available(self, obj: Any, lifecycle: Lifecycle) -> bool:
        transition = getattr(obj, lifecycle.transition or lifecycle.name, None)
        return transition is not None and can_proceed(transition)

    def lifecycle_buttons(self, request: HttpRequest, obj: Any) -> list[tuple[str, str]]:
        info = self.opts.app_label, self.opts.model_name
        return [
            (
                lifecycle.label,
                reverse(
                    "admin:{}_{}_lifecycle".format(*info),
                    args=[obj.pk, lifecycle.name],
                    current_app=self.admin_site.name,
                ),
            )
            for lifecycle in self.lifecycles
            if lifecycle.on_change_page
            and user_has_role(request.user, lifecycle.role)
            and self.lifecycle_available(obj, lifecycle)
        ]

    def lifecycle_view(self, request: HttpRequest, object_id: str, name: str) -> HttpResponse:
        """GET: the confirmation page (with the note or reason asked for); POST: run it."""
        lifecycle = next(
            (lc for lc in self.lifecycles if lc.name == name and lc.on_change_page), None
        )
        obj = self.get_object(request, unquote(object_id))
        if lifecycle is None or obj is None:
            raise Http404
        if not self.has_view_permission(request, obj) or not user_has_role(
            request.user, lifecycle.role
        ):
            raise PermissionDenied
        change_url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
            args=[obj.pk],
            current_app=self.admin_site.name,
        )
        form = LifecycleForm(
            lifecycle,
            required=lifecycle.needs_text([obj]),
            data=request.POST if request.method == "POST" else None,
        )
        if request.method == "POST" and form.is_valid():
            self.apply_lifecycle(request, lifecycle, [obj], form.text())
            return HttpResponseRedirect(change_url)
        return render_action_page(
            request,
            self,
            title=f"{lifecycle.label}: {obj}",
            question=f"{lifecycle.label} {self.opts.verbose_name} {obj}?",
            objects=[obj],
            form=form,
            submit_label=lifecycle.label,
            cancel_url=change_url,
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        buttons = self.lifecycle_buttons(request, obj) if obj is not None else []
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), "lifecycle_buttons": buttons}
        )

    # --- service refusals while saving or deleting --------------------------

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except DomainError as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(
                reverse(
                    f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
                    args=[unquote(object_id)],
                    current_app=self.admin_site.name,
                )
            )


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """Rows written only by the services and workers: looked at, never edited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class PublishedFilter(admin.SimpleListFilter):
    title = "published"
    parameter_name = "published"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Published"), ("no", "Waiting")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(published_at__isnull=self.value() == "no")
        return queryset


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyModelAdmin):
    list_display = (
        "created_at",
        "entity_type",
        "entity_id",
        "action",
        "from_state",
        "to_state",
        "actor",
        "actor_kind",
        "reason",
    )
    list_filter = ("entity_type", "action", "actor_kind", "created_at")
    search_fields = ("entity_id", "actor", "action", "reason")
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyModelAdmin):
    list_display = (
        "id",
        "topic",
        "key",
        "event_type",
        "created_at",
        "published_at",
        "attempts",
        "last_error",
    )
    list_filter = (PublishedFilter, "topic", "event_type")
    search_fields = ("key", "event_type", "=event_id", "last_error")
    show_full_result_count = False
