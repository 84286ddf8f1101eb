from __future__ import annotations

import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class AuditLog(models.Model):
    """One row per change of state or configuration of any entity, written in
    the same transaction as the change."""

    entity_type = models.CharField(max_length=32)
    entity_id = models.CharField(max_length=64)
    action = models.CharField(max_length=48)
    from_state = models.CharField(max_length=32, blank=True, default="")
    to_state = models.CharField(max_length=32, blank=True, default="")
    # {field: [old, new]} for configuration changes; empty for pure transitions.
    changes = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    actor = models.CharField(max_length=150)
    actor_kind = models.CharField(max_length=16)
    reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "mm_audit_log"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["entity_type", "entity_id", "created_at"])]

    def __str__(self) -> str:
        return f"{self.entity_type}:{self.entity_id} {self.action} by {self.actor}"


class OutboxEvent(models.Model):
    """Transactional outbox: an event is written with the change that caused it
    and published to Kafka later by the relay, at least once, in id order per key."""

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    topic = models.CharField(max_length=128)
    key = models.CharField(max_length=128)
    event_type = models.CharField(max_length=64)
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    # The W3C trace context the change was made in ({} when tracing is off): the
    # relay sends it on in the message's headers, so the event joins that trace.
    trace_context = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "outbox"
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["id"],
                name="outbox_unpublished_idx",
                condition=models.Q(published_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.topic}/{self.key} {self.event_type}"
