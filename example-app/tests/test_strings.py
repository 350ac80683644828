"""The /strings routes over HTTP, including request validation."""

import pytest


@pytest.mark.parametrize(
    ("route", "text", "expected"),
    [
        ("reverse", "hello", {"result": "olleh"}),
        ("reverse", "", {"result": ""}),
        ("upper", "Hello, World", {"result": "HELLO, WORLD"}),
        ("lower", "Hello, World", {"result": "hello, world"}),
        ("count", "  the quick\tbrown fox \n", {"words": 4, "characters": 23}),
        ("count", "", {"words": 0, "characters": 0}),
        ("palindrome", "Was it a car or a cat I saw?", {"palindrome": True}),
        ("palindrome", "hello", {"palindrome": False}),
    ],
)
def test_string_routes(client, route, text, expected):
    response = client.post(f"/strings/{route}", json={"text": text})
    assert response.status_code == 200, response.text
    assert response.json() == expected


@pytest.mark.parametrize("route", ["reverse", "upper", "lower", "count", "palindrome"])
def test_missing_text_is_a_validation_error(client, route):
    response = client.post(f"/strings/{route}", json={})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "text"]
    assert error["type"] == "missing"


def test_text_must_be_a_string(client):
    response = client.post("/strings/reverse", json={"text": 42})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "text"]


def test_text_length_is_limited(client):
    response = client.post("/strings/upper", json={"text": "x" * 10_001})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "string_too_long"


def test_get_is_not_allowed(client):
    assert client.get("/strings/reverse").status_code == 405
