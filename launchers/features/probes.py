"""Liveness and readiness probes, as a load balancer or Kubernetes reads them.

Neither asks the database. While it is away (`app.outage`), `/healthz` stays 200: restarting a
worker brings no database back. `/readyz` stays 200 too, tied only to this worker draining:
every replica shares the one database, so readiness tied to it would take them all out of the
load balancer at once: clients would get its bare 502s instead of a 503 with `Retry-After`,
and `/info` would go with them.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

router = APIRouter(tags=["probes"])


# HEAD too: uptime monitors and some load balancers probe with it. One route per method, each
# with its own operation id: one route for both gives them the same id in the OpenAPI document.
@router.get("/healthz", operation_id="healthz")
@router.head("/healthz", operation_id="healthz_head")
async def healthz() -> dict[str, str]:
    """Liveness: the worker's event loop answers."""
    return {"status": "ok"}


@router.get("/readyz", operation_id="readyz")
@router.head("/readyz", operation_id="readyz_head")
async def readyz(request: Request, response: Response) -> dict[str, str]:
    """Readiness: 200 while serving, 503 from the moment this worker begins to shut down."""
    lifecycle = request.app.state.lifecycle
    if not lifecycle.ready:
        response.status_code = 503
    return {"status": lifecycle.state.value}
