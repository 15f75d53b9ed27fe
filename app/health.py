"""Liveness and readiness probes, as a load balancer or Kubernetes reads them."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

router = APIRouter(tags=["probes"])


# HEAD too: uptime monitors and some load balancers probe with it.
@router.api_route("/healthz", methods=["GET", "HEAD"])
async def healthz() -> dict[str, str]:
    """Liveness: the worker's event loop answers."""
    return {"status": "ok"}


@router.api_route("/readyz", methods=["GET", "HEAD"])
async def readyz(request: Request, response: Response) -> dict[str, str]:
    """Readiness: 200 while serving, 503 from the moment this worker begins to shut down."""
    lifecycle = request.app.state.lifecycle
    if not lifecycle.ready:
        response.status_code = 503
    return {"status": lifecycle.state.value}
