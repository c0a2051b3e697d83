"""With the keyboard and a screen reader, in a real browser under the Content-Security-Policy: the live run page
keeps the focus where it is and says status changes once; a skip link, filters that submit with Enter, and a
focus ring that stands out (3:1) from the controls and what surrounds them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deliveries.models import PipelineRun, RunStatus, Stage, StageStatus
from environments.models import Deployment, DeploymentStatus
from tests.factories import DeploymentFactory, ProjectFactory, RunFactory, StageFactory

pytestmark = pytest.mark.django_db(transaction=True)

# What the status region says, and how many fragments live.js swaps in: ids of the region and of the live part.
WATCH = """([announcer, live]) => {
    const region = document.getElementById(announcer);
    window.said = [];
    new MutationObserver(() => window.said.push(region.textContent))
        .observe(region, {childList: true, characterData: true, subtree: true});
    window.updates = 0;
    document.getElementById(live).addEventListener('live:updated', () => window.updates++);
}"""


def wait_for_updates(page, count: int) -> None:
    """Until live.js has swapped in `count` more fragments."""
    start = page.evaluate("() => window.updates")
    page.wait_for_function("n => window.updates >= n", arg=start + count)


def test_the_live_run_page_keeps_the_focus_and_announces_status_changes_only(signed_in, live_server, users):
    now = timezone.now()
    run = RunFactory(project=ProjectFactory(slug="shop"), build_number=7, status=RunStatus.RUNNING,
                     started_at=now - timedelta(minutes=1), finished_at=None)
    StageFactory(run=run, name="Lint", order=1, started_at=now - timedelta(minutes=1),
                 finished_at=now - timedelta(seconds=30))
    StageFactory(run=run, name="Build", order=2, status=StageStatus.RUNNING, started_at=now - timedelta(seconds=30))
    page = signed_in()
    page.goto(live_server.url + run.get_absolute_url())
    page.evaluate(WATCH, ["run-announcer", "run-live"])

    # Abort keeps the focus while the page refreshes around it, and nothing is announced: nothing changed.
    page.get_by_role("button", name="Abort").focus()
    page.evaluate("() => { window.abort = document.activeElement; }")
    wait_for_updates(page, 2)
    assert page.evaluate("() => document.activeElement === window.abort")
    assert page.evaluate("() => window.said") == []

    # A link in a part that is replaced (the timeline grows every tick) gets the focus back.
    page.locator("nav.tabs").get_by_role("link", name="Security").focus()
    page.evaluate("() => { window.link = document.activeElement; }")
    page.wait_for_function("() => !window.link.isConnected")
    assert page.evaluate("() => document.activeElement.textContent") == "Security"

    # The current stage changes: said once, and Abort, untouched, keeps the focus.
    page.get_by_role("button", name="Abort").focus()
    page.evaluate("() => { window.abort = document.activeElement; }")
    Stage.objects.filter(run=run, name="Build").update(status=StageStatus.SUCCESS, finished_at=timezone.now())
    StageFactory(run=run, name="Test", order=3, status=StageStatus.RUNNING, started_at=timezone.now())
    page.wait_for_function("() => document.getElementById('run-announcer').textContent === 'Running, stage Test'")
    assert page.evaluate("() => document.activeElement === window.abort")
    wait_for_updates(page, 2)
    assert page.evaluate("() => window.said") == ["Running, stage Test"]

    # The run ends: said, and the focus, whose button is gone, goes to the main content.
    Stage.objects.filter(run=run, name="Test").update(status=StageStatus.SUCCESS, finished_at=timezone.now())
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCESS, finished_at=timezone.now())
    page.wait_for_function("() => document.getElementById('run-announcer').textContent === 'Success'")
    assert page.evaluate("() => window.said") == ["Running, stage Test", "Success"]
    assert page.get_by_role("button", name="Abort").count() == 0
    assert page.evaluate("() => document.activeElement.id") == "main"


def test_the_live_deployment_page_keeps_the_focus_while_its_steps_grow_and_announces_its_end(
    signed_in, live_server, users
):
    run = RunFactory(project=ProjectFactory(slug="shop"), build_number=7)
    deployment = DeploymentFactory(source_run=run, status=DeploymentStatus.RUNNING, finished_at=None,
                                   step_log="pull images\n")
    page = signed_in(users.operator)
    page.goto(live_server.url + deployment.get_absolute_url())
    page.evaluate(WATCH, ["deployment-announcer", "deployment-live"])

    # The heading's link keeps the focus while the step log grows below it, and nothing is said: the status stays.
    page.locator(".breadcrumbs").get_by_role("link", name="staging").focus()
    page.evaluate("() => { window.link = document.activeElement; }")
    Deployment.objects.filter(pk=deployment.pk).update(step_log="pull images\nstart trial\n")
    page.wait_for_function("() => document.querySelector('.step-log').textContent.includes('start trial')")
    wait_for_updates(page, 1)
    assert page.evaluate("() => document.activeElement === window.link")
    assert page.evaluate("() => window.said") == []

    # It ends: said once, the focus comes back to the same link in the new heading, and Redeploy is offered.
    Deployment.objects.filter(pk=deployment.pk).update(status=DeploymentStatus.SUCCESS, finished_at=timezone.now())
    page.wait_for_function("() => document.getElementById('deployment-announcer').textContent === 'Success'")
    assert page.evaluate("() => window.said") == ["Success"]
    assert page.evaluate("() => !window.link.isConnected && document.activeElement.textContent === 'staging'")
    assert page.get_by_role("link", name="Redeploy…").count() == 1


def test_the_first_tab_offers_a_skip_link_to_the_main_content(signed_in, live_server):
    page = signed_in()
    page.keyboard.press("Tab")
    skip = page.evaluate("() => [document.activeElement.textContent, document.activeElement.getBoundingClientRect()]")
    assert skip[0] == "Skip to main content" and skip[1]["top"] >= 0 and skip[1]["width"] > 1  # shown when focused
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    assert page.evaluate("() => !!document.activeElement.closest('main')")


def test_filters_submit_with_enter_from_a_select_and_a_date(signed_in, live_server):
    RunFactory(project=ProjectFactory(slug="shop"), status=RunStatus.FAILED)
    page = signed_in()
    page.goto(f"{live_server.url}/projects/shop/")
    status = page.locator("#run-filters select[name=status]")
    status.select_option("failed")
    status.press("Enter")
    page.wait_for_url("**status=failed**")
    since = page.locator("#run-filters input[name=since]")
    since.fill("2026-01-02")
    since.press("Enter")
    page.wait_for_url("**since=2026-01-02**")
    assert page.locator("#run-filters select[name=status]").input_value() == "failed"


CONTRAST = """element => {
    const rgb = value => (value.match(/[\\d.]+/g) || []).map(Number);
    const background = node => {
        for (; node; node = node.parentElement) {
            const [r, g, b, a] = rgb(getComputedStyle(node).backgroundColor);
            if (a === undefined || a > 0) return [r, g, b];
        }
        return [255, 255, 255];
    };
    const luminance = ([r, g, b]) => [r, g, b].map(c => c / 255)
        .map(c => c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4)
        .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
    const ratio = (x, y) => { const [a, b] = [luminance(x), luminance(y)].sort((p, q) => q - p);
                               return (a + 0.05) / (b + 0.05); };
    const style = getComputedStyle(element);
    const ring = rgb(style.outlineColor);
    return {style: style.outlineStyle, width: parseFloat(style.outlineWidth),
            control: ratio(ring, background(element)), around: ratio(ring, background(element.parentElement))};
}"""


def test_the_focus_ring_stands_out_from_every_kind_of_control(signed_in, live_server, settings):
    settings.JENKINS_URL, settings.JENKINS_USER, settings.JENKINS_TOKEN = "http://127.0.0.1:9", "portal", "token"
    project = ProjectFactory(slug="shop", jenkins_job_path="shop")
    RunFactory(project=project, build_number=1, status=RunStatus.RUNNING, finished_at=None)
    page = signed_in()
    checked = []
    for path in ("/projects/shop/", f"/projects/shop/runs/{project.runs.get().pk}/"):
        page.goto(live_server.url + path)
        for _ in range(40):  # the keyboard's way through the page, as far as its main controls
            page.keyboard.press("Tab")
            focused = page.evaluate_handle("() => document.activeElement")
            # (a date field's calendar button, inside the field, is the one stop where the field is not :focus)
            if focused.evaluate("e => !['BUTTON', 'A', 'SELECT', 'INPUT'].includes(e.tagName) || !e.matches(':focus')"):
                continue
            ring = focused.evaluate(CONTRAST)
            name = focused.evaluate("e => e.tagName + ' ' + (e.textContent || e.name).trim()")
            checked.append(name)
            assert ring["style"] != "none" and ring["width"] >= 2, name
            assert ring["control"] >= 3 and ring["around"] >= 3, (name, ring)
    assert {"BUTTON Filter", "BUTTON Run pipeline", "BUTTON Abort", "BUTTON Sign out"} <= set(checked), checked
