"""manage.py create_project_token: a token for scripted setups, printed once."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from deliveries.models import AuditEvent, ProjectToken
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def test_it_prints_a_token_that_the_api_accepts(client):
    project = ProjectFactory(slug="shop")
    out, err = io.StringIO(), io.StringIO()
    call_command("create_project_token", "shop", "--name", "ci", stdout=out, stderr=err)
    token = out.getvalue().strip()
    assert token.startswith("dp_") and "\n" not in token
    row = ProjectToken.objects.get(project=project)
    assert row.name == "ci" and row.token_hash != token and token not in err.getvalue()
    assert AuditEvent.objects.get(project=project).action == "token.issued"
    response = client.post("/api/v1/projects/shop/runs/", data=json.dumps({"build_number": 1}),
                           content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 201
    assert AuditEvent.objects.filter(action="run.created").get().actor_label == f"ci (dp_{row.prefix})"


def test_it_names_the_token_jenkins_by_default():
    ProjectFactory(slug="shop")
    call_command("create_project_token", "shop", stdout=io.StringIO(), stderr=io.StringIO())
    assert ProjectToken.objects.get().name == "jenkins"


def test_it_refuses_an_unknown_project():
    ProjectFactory(slug="shop")
    with pytest.raises(CommandError, match="nowhere"):
        call_command("create_project_token", "nowhere", stdout=io.StringIO(), stderr=io.StringIO())
    assert not ProjectToken.objects.exists()
