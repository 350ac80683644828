"""string-service: a small FastAPI service that transforms and inspects strings.

Layout: ``main.py`` builds the app, ``route/`` holds thin HTTP routers, ``service/`` the pure logic they call,
and ``model/`` the pydantic request and response bodies.
"""

__version__ = "0.1.0"
