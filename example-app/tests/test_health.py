"""GET /health and the OpenAPI documents."""


def test_health_answers_ok(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_openapi_lists_every_route(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    paths = set(response.json()["paths"])
    assert paths == {
        "/health",
        "/strings/reverse",
        "/strings/upper",
        "/strings/lower",
        "/strings/count",
        "/strings/palindrome",
    }


def test_docs_page_is_served(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()


def test_module_level_app_serves_too():
    from fastapi.testclient import TestClient

    from app.main import app

    assert TestClient(app).get("/health").json() == {"status": "ok"}
