"""Fixtures shared by the tests: a TestClient on a fresh app from the factory."""

import pytest
from fastapi.testclient import TestClient

from app.main import create_app


@pytest.fixture
def client() -> TestClient:
    with TestClient(create_app()) as client:
        yield client
