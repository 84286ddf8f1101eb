"""Participants in the ops panel: enrolment and updates through
participants.services, the lifecycle as actions (ops only), and no delete:
a participant is terminated, never removed (SPEC Part B.13)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.forms import ModelForm
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from common.admin import Lifecycle, ServiceModelAdmin, admin_actor
from common.auth import Role
from participants import services
from participants.enums import ParticipantState
from participants.models import Participant

PARTICIPANT_LIFECYCLES = (
    Lifecycle(
        name="activate",
        label="Activate",
        role=Role.OPS,
        run=lambda p, actor, text: services.participant_activate(participant=p, actor=actor),
    ),
    Lifecycle(
        name="suspend",
        label="Suspend",
        role=Role.OPS,
        run=lambda p, actor, text: services.participant_suspend(participant=p, actor=actor),
    ),
    Lifecycle(
        name="terminate",
        label="Terminate (permanent)",
        role=Role.OPS,
        run=lambda p, actor, text: services.participant_terminate(
            participant=p, actor=actor, reason=text
        ),
        text_field="reason",
        text_label="Reason (optional)",
        text_needed=lambda objects: False,
        confirm=True,
    ),
)


@admin.register(Participant)
class ParticipantAdmin(ServiceModelAdmin):
    audit_entity_type = "participant"
    lifecycles = PARTICIPANT_LIFECYCLES
    list_display = (
        "name",
        "short_id",
        "account_id",
        "user_id",
        "tier",
        "state",
        "revenue_model",
        "revenue_share_pct",
        "margin_usdt",
        "created_at",
    )
    list_filter = ("state", "tier", "revenue_model")
    search_fields = ("name", "short_id", "account_id", "user_id")
    readonly_fields = (
        "id",
        "short_id",
        "state",
        "state_changed_at",
        "created_at",
        "updated_at",
        "memberships_table",
        "terms_table",
        "audit_history",
    )
    fieldsets = (
        (None, {"fields": ("name", "user_id", "account_id", "tier", "margin_usdt")}),
        ("Revenue", {"fields": ("revenue_model", "revenue_share_pct")}),
        (
            "Identity and lifecycle",
            {"fields": ("id", "short_id", "state", "state_changed_at", "created_at", "updated_at")},
        ),
        ("Memberships", {"fields": ("memberships_table",)}),
        (
            "Revenue terms history (a settlement applies those in force at its month's start)",
            {"fields": ("terms_table",)},
        ),
        ("History", {"fields": ("audit_history",)}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Participant | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets[:2]
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Participant | None = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        # The identity the orders carry is fixed at enrolment.
        return fields if obj is None else ("user_id", "account_id", *fields)

    @admin.display(description="Pool memberships")
    def memberships_table(self, obj: Participant) -> SafeString | str:
        memberships = obj.memberships.select_related("pool")
        if not memberships:
            return "Not a member of any pool."
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:pools_poolmember_change", args=[m.pk]),
                    m.pool.symbol,
                    m.pool.state,
                    m.weight,
                    m.max_position_usdt,
                )
                for m in memberships
            ),
        )
        return format_html(
            "<table><thead><tr><th>Pool</th><th>Pool state</th><th>Weight</th>"
            "<th>Max position (USDT)</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="Revenue terms")
    def terms_table(self, obj: Participant) -> SafeString | str:
        terms = obj.terms.order_by("effective_at", "id")
        if not terms:
            return "No terms on record: settlements apply the current ones."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    f"{t.effective_at:%Y-%m-%d %H:%M:%S} UTC",
                    t.revenue_model,
                    t.revenue_share_pct,
                    t.set_by,
                )
                for t in terms
            ),
        )
        return format_html(
            "<table><thead><tr><th>In force from</th><th>Revenue model</th><th>Share %</th>"
            "<th>Set by</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and self.has_ops_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Participant | None = None) -> bool:
        if obj is not None and obj.state == ParticipantState.TERMINATED:
            return False
        return super().has_change_permission(request, obj) and self.has_ops_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Participant | None = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: Participant, form: ModelForm[Participant], change: bool
    ) -> None:
        actor = admin_actor(request)
        if change:
            updates = {
                name: form.cleaned_data[name]
                for name in services.MUTABLE_FIELDS
                if name in form.changed_data
            }
            services.participant_update(participant=obj, updates=updates, actor=actor)
            return
        data = {name: form.cleaned_data[name] for name in services.ENROL_FIELDS}
        participant = services.participant_enroll(data=data, actor=actor)
        obj.pk = participant.pk
        obj.short_id = participant.short_id
        obj._state.adding = False
