"""Browser tests: Debian's Chromium driven by Playwright against the live test server.

Playwright never downloads a browser here: it drives /usr/bin/chromium (CHROMIUM_PATH) with the flags this
closed network needs. Screenshots of every page land in var/screenshots for review.
"""

import os
import shutil
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make around it are plain
# synchronous calls, so Django's async-safety guard is lifted for these tests only.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
# axe-core from the npm registry, pinned in package-lock.json beside this file (`make test-tools` runs npm ci).
AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def axe():
    """Run axe-core's WCAG 2.1 A and AA rules on a page; return its serious and critical violations, described.

    The page's context must bypass the Content-Security-Policy: the script is added inline, which the policy
    (rightly) refuses."""
    if not AXE.exists():
        pytest.skip(f"axe-core not found at {AXE} (make test-tools installs it with npm ci)")

    def check(page) -> list[str]:
        if not page.evaluate("() => !!window.axe"):
            page.add_script_tag(path=str(AXE))
        result = page.evaluate(
            "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
            AXE_TAGS,
        )
        return [
            f"{violation['impact']} {violation['id']}: {violation['help']} ({len(violation['nodes'])} nodes, e.g. "
            + "; ".join(" ".join(node["target"]) for node in violation["nodes"][:3]) + ")"
            for violation in result["violations"] if violation["impact"] in ("serious", "critical")
        ]

    return check


@pytest.fixture
def screenshot(page):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def signed_in(page, live_server, users):
    """The page, signed in through the login form as the developer."""

    def sign_in(user=None, password="password"):
        user = user or users.developer
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")
        return page

    return sign_in


@pytest.fixture
def demo(users):
    """The demo history; its storefront project and a dev run of it with every kind of report."""
    from django.core.management import call_command

    from deliveries.models import PipelineRun, Project

    call_command("seed_demo")
    project = Project.objects.get(slug="storefront")
    run = (
        PipelineRun.objects.filter(project=project, branch="dev", reports__kind="jmeter", findings__isnull=False)
        .distinct().order_by("-created_at").first()
    )
    return project, run
