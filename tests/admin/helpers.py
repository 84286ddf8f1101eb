"""What a person does in the panel, as test helpers: pick rows and run an
action, read back the messages the page showed."""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from django.http import HttpResponse
from django.test import Client


def messages_of(response: Any) -> list[str]:
    """The messages the page shows (after any redirect the client followed)."""
    if response.context is None or "messages" not in response.context:
        return []
    return [str(message) for message in response.context["messages"]]


def landed_on(response: Any) -> str:
    """The URL a followed redirect ended on ("" when there was none)."""
    return str(response.redirect_chain[-1][0]) if response.redirect_chain else ""


def run_action(
    client: Client, changelist: str, action: str, objects: list[Model], **form: Any
) -> HttpResponse:
    """Selects `objects` on the changelist and runs `action`, as the action bar
    posts it. With form fields (apply=..., note=...) it posts the intermediate
    page's form instead."""
    data: dict[str, Any] = {"action": action, "_selected_action": [str(o.pk) for o in objects]}
    if form:
        data.update(form)
    else:
        data["index"] = "0"
    return client.post(changelist, data)


def audit_actors(entity_type: str, entity_id: object, action: str) -> list[str]:
    from common.models import AuditLog

    return list(
        AuditLog.objects.filter(
            entity_type=entity_type, entity_id=str(entity_id), action=action
        ).values_list("actor", flat=True)
    )
