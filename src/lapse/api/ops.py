"""/healthz (the process is up), /readyz (the database and the storage answer), /metrics (Prometheus)."""

from fastapi import APIRouter, Response
from sqlalchemy import text

from lapse import metrics
from lapse.api.deps import RuntimeDep
from lapse.api.problems import problem, responses
from lapse.errors import Unavailable

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None, responses=responses(503))
async def readyz(runtime: RuntimeDep) -> Response | dict[str, str]:
    try:
        async with runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:  # any failure to reach the database means not ready
        return problem(503, "The database is not reachable.", headers={"Retry-After": "5"})
    try:
        await runtime.storage.check()
    except Unavailable:
        return problem(503, "The storage is not writable.", headers={"Retry-After": "5"})
    return {"status": "ready"}


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def prometheus_metrics() -> Response:
    """Counters in Prometheus's text format, summed over every worker (lapse.metrics)."""
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
