"""The demo's promotion walked in the browser by its two users: dana requests the promotion of a green dev run,
tom reads the gate evaluation and approves, and the evidence shows once production runs it. Screenshots of each
step land in var/screenshots."""

import pytest

from deliveries.models import Promotion, PromotionState
from tests.browser.conftest import SCREENSHOTS
from tests.promotions.test_promotion_e2e import green_dev_run, promotion_flow, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def sign_in(page, live_server, username):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def test_dana_requests_tom_approves_and_the_evidence_shows(browser, page, screenshot, live_server, client, settings,
                                                           monkeypatch):
    with promotion_flow(live_server, settings, monkeypatch) as (project, dana, tom, jenkins, gitlab):
        dev = green_dev_run(client, project, dana, gitlab)

        sign_in(page, live_server, "dana")
        page.goto(f"{live_server.url}{dev.get_absolute_url()}")
        page.click("button:has-text('Request promotion')")
        page.wait_for_selector("h1:has-text('Promotion')")
        screenshot("promotion-request")
        promotion = Promotion.objects.get(project=project)
        assert "Quality gate" in page.content() and "passed" in page.inner_text("#gate-heading")
        page.locator("section.gate").screenshot(path=str(SCREENSHOTS / "promotion-gate.png"))

        tom_context = browser.new_context(viewport={"width": 1400, "height": 900})
        tom_page = tom_context.new_page()
        sign_in(tom_page, live_server, "tom")
        tom_page.goto(f"{live_server.url}{promotion.get_absolute_url()}")
        tom_page.fill("textarea[name=comment]", "The evidence is fine")
        tom_page.check("input[name=confirm]")
        tom_page.click("button:has-text('Approve and merge')")
        tom_page.wait_for_selector("text=Approved")
        tom_page.screenshot(path=str(SCREENSHOTS / "promotion-approval.png"), full_page=True)
        wait_for("the release", lambda: Promotion.objects.filter(pk=promotion.pk,
                                                                  state=PromotionState.RELEASED).first())
        tom_page.goto(f"{live_server.url}{promotion.get_absolute_url()}evidence/")
        assert "The evidence is fine" in tom_page.content()
        tom_page.screenshot(path=str(SCREENSHOTS / "promotion-evidence.png"), full_page=True)
        tom_context.close()
