"""Tracing for the Django processes, switched on by OPENOBSERVE_OTLP_ENDPOINT.

The web process calls `instrument_web` before Django builds its handler (the
instrumentation adds a middleware); each Celery worker process calls
`instrument_celery` as it starts. With no endpoint both do nothing and no
OpenTelemetry code runs on any request or task.
"""

from __future__ import annotations

from django.conf import settings

from telemetry import tracing


def instrument_web() -> bool:
    if not tracing.configure("mms-web", settings.SERVICE.otlp_endpoint):
        return False
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    DjangoInstrumentor().instrument(tracer_provider=tracing.provider)
    return True


def instrument_celery() -> bool:
    if not tracing.configure("mms-celery", settings.SERVICE.otlp_endpoint):
        return False
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    CeleryInstrumentor().instrument(tracer_provider=tracing.provider)
    return True
