"""OpenTelemetry export over OTLP/HTTP, set up in each worker once it runs (never in a parent).

FastAPI 0.16x traces requests and records HTTP metrics natively, and stays idle until global
providers exist. Providers hold threads and sockets, which do not survive a fork, so each worker
makes its own in its lifespan, with its own `service.instance.id`: several workers of one
service are then told apart. `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` and the SDK's other
variables apply as usual.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable

from fastapi.telemetry import TelemetryConfig

from launchers.settings import Settings


def fastapi_config(settings: Settings) -> TelemetryConfig:
    """FastAPI's native telemetry asks for the global providers on every request: off unless a
    collector is configured, it costs nothing."""
    exporting = settings.otel_exporter_otlp_endpoint is not None
    return {"tracing": exporting, "metrics": exporting, "logs": exporting}


def start(settings: Settings, title: str) -> Callable[[], None] | None:
    """Install this worker's providers, the service named `SERVICE_NAME` or else the app's
    `title`; returns what flushes and stops them at shutdown."""
    endpoint = settings.otel_exporter_otlp_endpoint
    if endpoint is None:
        return None
    # Imported only when used: the SDK and its exporter weigh on every worker's start and memory.
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    endpoint = endpoint.removesuffix("/")
    attributes: dict[str, str | int] = {
        "service.instance.id": str(uuid.uuid4()),
        "process.pid": os.getpid(),
    }
    if "OTEL_SERVICE_NAME" not in os.environ:
        attributes["service.name"] = settings.service_name or title
    resource = Resource.create(attributes)  # merged with OTEL_RESOURCE_ATTRIBUTES
    tracer = TracerProvider(resource=resource)
    tracer.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(f"{endpoint}/v1/traces")))
    meter = MeterProvider(
        resource=resource,
        metric_readers=[
            PeriodicExportingMetricReader(OTLPMetricExporter(f"{endpoint}/v1/metrics"))
        ],
    )
    trace.set_tracer_provider(tracer)
    metrics.set_meter_provider(meter)

    def stop() -> None:
        tracer.shutdown()
        meter.shutdown()

    return stop
