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


def test_docs_page_loads_swagger_ui_from_the_portal_not_a_cdn():
    html = Client().get("/api/docs").content.decode()
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower() and "https://" not in html


def test_version_answers_with_and_without_credentials(member_user):
    assert Client().get("/api/version").json()["user"] is None
    client = Client()
    client.force_login(member_user)
    assert client.get("/api/version").json()["user"] == "mia"


def test_no_two_schemas_share_a_component_name():
    """ninja names a component after its class; two different classes of one name silently overwrite
    each other, and an operation is then documented with the other one's fields."""
    from ninja.openapi.schema import OpenAPISchema

    from sparkportal.api import api

    seen: dict[str, dict] = {}
    clashes: list[str] = []
    original = OpenAPISchema.add_schema_definitions

    def recording(self, definitions: dict) -> None:
        for name, definition in definitions.items():
            if seen.setdefault(name, definition) != definition:
                clashes.append(name)
        original(self, definitions)

    OpenAPISchema.add_schema_definitions = recording
    try:
        api.get_openapi_schema()
    finally:
        OpenAPISchema.add_schema_definitions = original
    assert not clashes, f"component names used by different schemas: {sorted(set(clashes))}"


def test_every_operation_with_input_documents_its_422():
    schema = Client().get("/api/openapi.json").json()
    missing = [f"{method.upper()} {path}" for path, operations in schema["paths"].items()
               for method, operation in operations.items()
               if (operation.get("parameters") or operation.get("requestBody")) and "422" not in operation["responses"]]
    assert not missing
