"""The OpenAPI schema and its docs page."""

import json
import re

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_it_serves_a_valid_openapi_schema_without_login(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    validator = pytest.importorskip("openapi_spec_validator", reason="openapi-spec-validator is not installed")
    validator.validate(schema)
    paths = set(schema["paths"])
    assert {
        "/api/v1/projects/{slug}/runs/",
        "/api/v1/projects/{slug}/runs/{build_number}/",
        "/api/v1/projects/{slug}/runs/{build_number}/stages/",
        "/api/v1/projects/{slug}/runs/{build_number}/artifacts/",
        "/api/v1/projects/{slug}/runs/{build_number}/reports/",
        "/api/v1/projects/{slug}/runs/{build_number}/deployments/",
        "/api/v1/projects/{slug}/checks/",
        "/api/v1/hooks/jenkins-notification/",
    } <= paths
    upload = schema["paths"]["/api/v1/projects/{slug}/runs/{build_number}/reports/"]["post"]
    assert list(upload["requestBody"]["content"]) == ["multipart/form-data"]
    assert {"202", "413", "415"} <= set(upload["responses"])


def test_drf_spectacular_finds_nothing_to_warn_about(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert "jenkins-notification" in out.read_text()


def test_the_docs_page_loads_without_login_and_only_from_local_files(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert re.findall(r"https?://|//cdn|unpkg|jsdelivr", html) == []
    for url in re.findall(r"""(?:src|href)=["']([^"']+)["']""", html):
        assert url.startswith("/"), url


def test_any_one_of_the_hooks_token_schemes_is_enough(client):
    schema = json.loads(client.get("/api/schema/?format=json").content)
    hook = schema["paths"]["/api/v1/hooks/jenkins-notification/"]["post"]
    # Separate items are alternatives; schemes inside one item would all be required at once.
    assert hook["security"] == [
        {"projectTokenBearer": []}, {"projectTokenInQuery": []}, {"projectTokenInHeader": []}
    ]
    assert {"projectTokenBearer", "projectTokenInQuery", "projectTokenInHeader"} <= set(
        schema["components"]["securitySchemes"])
