"""What a browser's address bar can hold gets a page or a 400, never a 500: NUL (%00, refused by PostgreSQL in
text), digits of other scripts, and garbage in every filter the pages and the admin read."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from tests.factories import DeploymentFactory, RunFactory, UserFactory

pytestmark = pytest.mark.django_db

# NUL, a digit int() refuses, one it takes, a number no column holds, a date no calendar has, bytes not UTF-8.
GARBAGE = ["x%00y", "²", "٣", "99999999999999999999999", "9999-99-99", "%ff%fe"]
ADMIN_GARBAGE = ["x%00y", "²", "99999999999999999999999"]


@pytest.fixture
def run():
    deployment = DeploymentFactory()
    return RunFactory(project=deployment.project, build_number=9999)


@pytest.fixture
def signed_in(client, users):
    client.force_login(users.developer)
    client.raise_request_exception = False
    return client


def pages(run):
    slug = run.project.slug
    from scanners.models import Report
    report = Report.objects.create(run=run, kind="trivy", sha256="0" * 64, original_name="r.json")
    return [
        "/", f"/projects/{slug}/", f"/projects/{slug}/dora/", f"/projects/{slug}/security/",
        f"/projects/{slug}/performance/", f"/projects/{slug}/attacks/", f"/projects/{slug}/runs/{run.pk}/",
        f"/projects/{slug}/runs/{run.pk}/security/", f"/projects/{slug}/runs/{run.pk}/performance/",
        f"/projects/{slug}/runs/{run.pk}/attacks/", f"/reports/{report.pk}/",
    ]


PARAMS = ["days", "q", "branch", "status", "since", "until", "page", "fixed_page", "severity", "class", "sort", "new"]


@pytest.mark.parametrize("value", GARBAGE)
def test_no_page_answers_500_to_garbage_in_its_query_string(signed_in, run, value):
    query = "&".join(f"{name}={value}" for name in PARAMS)  # the pages ignore a value they cannot use
    for path in pages(run):
        response = signed_in.get(f"{path}?{query}")
        assert response.status_code in (200, 400), (path, value, response.status_code)
        assert (response.status_code == 400) == ("%00" in value)


@pytest.mark.parametrize("days", ["²", "٣", "7²", "%00"])
def test_the_dora_page_takes_only_ascii_digits_for_its_period(signed_in, run, days):
    response = signed_in.get(f"/projects/{run.project.slug}/dora/?days={days}")
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert response.context["days"] == 30


def test_a_nul_in_the_query_string_is_a_400_that_says_so(signed_in, run):
    response = signed_in.get(f"/projects/{run.project.slug}/security/?q=a%00b")
    assert response.status_code == 400


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    client.raise_request_exception = False
    return client


def changelists():
    for app_label in ("deliveries", "environments", "scanners"):
        for model in apps.get_app_config(app_label).get_models():
            model_admin = admin.site._registry[model]
            filters = [f if isinstance(f, str) else f[0] if isinstance(f, tuple) else None
                       for f in model_admin.list_filter]
            yield reverse(f"admin:{app_label}_{model._meta.model_name}_changelist"), [
                f for f in filters if f], model_admin.date_hierarchy


@pytest.mark.parametrize("value", ADMIN_GARBAGE)
def test_no_admin_list_answers_500_to_garbage_in_its_search_or_filters(admin_client, run, value):
    for url, filters, hierarchy in changelists():
        queries = [f"q={value}", f"o={value}", *(f"{name}={value}" for name in filters)]
        if hierarchy:
            queries.append(f"{hierarchy}__year={value}")
        for query in queries:
            response = admin_client.get(f"{url}?{query}")
            assert response.status_code in (200, 302, 400), (url, query, response.status_code)
