import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_user_signs_in_and_sees_the_projects(signed_in, live_server, screenshot):
    from tests.factories import ProjectFactory, RunFactory

    RunFactory(project=ProjectFactory(name="Storefront", slug="storefront"), build_number=12)
    page = signed_in()
    assert page.locator("h1").first.inner_text() == "What runs where"
    assert page.get_by_role("link", name="Storefront").first.is_visible()
    screenshot("home-signed-in")
    page.get_by_role("link", name="Storefront").first.click()
    page.wait_for_url(f"{live_server.url}/projects/storefront/")
    assert "#12" in page.locator("table.runs").inner_text()


def test_a_wrong_password_is_refused(page, live_server, users):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", users.developer.username)
    page.fill("#id_password", "not-the-password")
    page.click("button[type=submit]")
    assert "did not match" in page.locator(".error").inner_text()
