"""``GET /health``: liveness probe for load balancers, the image's HEALTHCHECK and ``cargo xtask run``."""

from fastapi import APIRouter

from app.model.health import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, summary="Liveness probe")
def health() -> Health:
    """Answer 200 with ``{"status": "ok"}`` while the process serves requests."""
    return Health(status="ok")
