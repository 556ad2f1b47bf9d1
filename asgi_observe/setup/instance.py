"""A ``service.instance.id`` of its own for every process.

Each worker that pushes cumulative OTLP metrics must be its own series: with one id for
all, a backend reads the workers' counters as one counter that keeps jumping back and
forth (https://opentelemetry.io/docs/specs/semconv/resource/#service, "service.instance.id
... MUST be unique for each instance of the same service.namespace,service.name pair").
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

INSTANCE_ID = "service.instance.id"


def with_instance_id(resource: Resource) -> Resource:
    """`resource`, with a random UUID as ``service.instance.id`` when it has none.

    Called in each process that configures telemetry: `asgi-observe run --workers N`
    and ``uvicorn --workers N`` start each worker fresh, so each draws its own.
    """
    if resource.attributes.get(INSTANCE_ID):
        return resource
    from opentelemetry.sdk.resources import Resource

    return resource.merge(Resource({INSTANCE_ID: str(uuid.uuid4())}))
