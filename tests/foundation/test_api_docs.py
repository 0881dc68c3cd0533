import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_openapi_docs_and_schema_are_served():
    client = Client()
    assert client.get("/api/docs").status_code == 200
    schema = client.get("/api/openapi.json").json()
    assert "/api/health" in schema["paths"] and "/api/accounts/keys" in schema["paths"]
    schemes = schema["components"]["securitySchemes"]
    assert {"BearerKeyAuth", "HeaderKeyAuth"} <= set(schemes)


def test_version_answers_with_and_without_credentials(member_user):
    assert Client().get("/api/version").json()["user"] is None
    client = Client()
    client.force_login(member_user)
    assert client.get("/api/version").json()["user"] == "mia"
