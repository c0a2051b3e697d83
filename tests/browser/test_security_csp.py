"""Under the Content-Security-Policy, the pages still work in a real browser: no script, style or request of
theirs is refused, the live run page keeps polling, the API docs draw, the admin works."""

import pytest

from deliveries.models import RunStatus, StageStatus
from tests.factories import ProjectFactory, RunFactory, StageFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def refused(page):
    """What the browser refused because of the policy (it says so on the console), and script errors."""
    messages = []
    page.on("console", lambda message: messages.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.on("pageerror", lambda error: messages.append(f"page error: {error}"))
    return messages


def test_the_live_run_page_polls_and_draws_its_timeline(signed_in, live_server, refused):
    run = RunFactory(project=ProjectFactory(slug="shop"), status=RunStatus.RUNNING, finished_at=None)
    StageFactory(run=run, name="Build", order=1, status=StageStatus.RUNNING)
    page = signed_in()
    with page.expect_response(lambda response: "live" in response.url or "fragment" in response.url,
                              timeout=10_000) as polled:
        page.goto(f"{live_server.url}/projects/shop/runs/{run.pk}/")
    assert polled.value.ok
    bar = page.locator(".timeline .bar").first
    assert bar.evaluate("element => element.style.width") != ""  # the inline style attribute applied
    assert refused == []


def test_the_home_page_and_the_admin_work(signed_in, live_server, refused):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    page = signed_in(admin)
    for path in ("/", "/admin/", "/admin/deliveries/project/", "/admin/deliveries/project/add/"):
        page.goto(live_server.url + path)
    page.locator("#id_name").press_sequentially("Storefront")
    assert page.input_value("#id_slug") == "storefront"  # the admin's own script, prepopulating the slug
    assert refused == []


def test_the_api_docs_draw_the_operations(page, live_server, refused):
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".opblock", timeout=15_000)
    assert page.locator(".opblock").count() >= 7
    assert refused == []
