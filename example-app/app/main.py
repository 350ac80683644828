"""The application factory.

``create_app()`` builds a fresh FastAPI app with every router included; ``app`` is the instance gunicorn and
uvicorn serve (``app.main:app``). The OpenAPI docs are at ``/docs`` and the schema at ``/openapi.json``.
"""

from fastapi import FastAPI

from app import __version__
from app.route import health, strings


def create_app() -> FastAPI:
    """Build the FastAPI application."""
    application = FastAPI(
        title="string-service",
        version=__version__,
        description="Transforms and inspects strings: reverse, upper/lower case, counts, palindromes.",
    )
    application.include_router(health.router)
    application.include_router(strings.router)
    return application


app = create_app()
