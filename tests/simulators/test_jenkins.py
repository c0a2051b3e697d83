"""The imitation Jenkins is only worth what it matches: its JSON against real payloads, its HTTP behaviour,
and the callbacks it plays against a portal (here a recorder standing in for the REST API)."""

import dataclasses
import json
import time

import jenkins as python_jenkins
import pytest
import requests

from simulators.jenkins import DEV_STAGES, RELEASE_STAGES, PortalTarget, Scenario, SimulatedJenkins
from tests.simulators.recorder import Recorder

USER, TOKEN = "portal", "api-token"
JOB = "delivery/shop"


@pytest.fixture
def recorder():
    recorder = Recorder()
    yield recorder
    recorder.stop()


@pytest.fixture
def fake(recorder):
    with SimulatedJenkins(users={USER: TOKEN}, queue_seconds=0.05, speed=0.02, callback_backoff=0.01) as fake:
        fake.add_job(JOB, portal=PortalTarget(recorder.url, "shop", "dp_token"))
        yield fake


@pytest.fixture
def server(fake):
    return python_jenkins.Jenkins(fake.url, username=USER, password=TOKEN, timeout=5)


def run_build(server, fake, params=None, timeout=10) -> int:
    queue_id = server.build_job(JOB, params or {"BRANCH": "dev", "PORTAL_RUN_ID": "12"})
    deadline = time.monotonic() + timeout
    while not (executable := server.get_queue_item(queue_id).get("executable")):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert fake.wait_for_builds(timeout)
    return executable["number"]


def session(fake, *, crumb=True) -> requests.Session:
    http = requests.Session()
    http.auth = (USER, TOKEN)
    if crumb:
        answer = http.get(f"{fake.url}crumbIssuer/api/json").json()
        http.headers[answer["crumbRequestField"]] = answer["crumb"]
    return http


# --- shapes, against the real payloads ------------------------------------------------------------------


def keys_of(shared_fixture, name):
    return set(json.loads(shared_fixture(f"jenkins/{name}").read_text()))


def test_queue_items_have_the_keys_of_real_ones(shared_fixture, server, fake):
    fake.queue_seconds = 5
    queued = server.build_job(JOB, {"BRANCH": "dev"})
    waiting = server.get_queue_item(queued)
    assert set(waiting) == keys_of(shared_fixture, "queue_item_waiting.real-log.json")
    server.cancel_queue(queued)
    cancelled = server.get_queue_item(queued)
    assert (cancelled["_class"], cancelled["cancelled"], cancelled["executable"]) == (
        "hudson.model.Queue$LeftItem", True, None)
    fake.queue_seconds = 0.05
    number = run_build(server, fake)
    left = server.get_queue_item(fake.build(JOB, number).queue_id)
    assert set(left) == keys_of(shared_fixture, "queue_item_left_workflowrun.json")
    assert set(left) == keys_of(shared_fixture, "queue_item_left_executable.python-jenkins-test.json")
    real = json.loads(shared_fixture("jenkins/queue_item_left_workflowrun.json").read_text())
    assert set(left["executable"]) == set(real["executable"])
    assert left["executable"]["_class"] == real["executable"]["_class"]
    assert set(left["task"]) == set(real["task"])


def test_build_info_has_the_keys_of_a_real_one(shared_fixture, server, fake):
    number = run_build(server, fake)
    info = server.get_build_info(JOB, number)
    real = json.loads(shared_fixture("jenkins/build_info_workflowrun_success.json").read_text())
    assert set(info) == set(real)
    assert info["_class"] == real["_class"]
    assert [a.get("_class") for a in info["actions"][:2]] == [a["_class"] for a in real["actions"][:2]]
    assert set(info["actions"][0]["parameters"][0]) == set(real["actions"][0]["parameters"][0])
    assert set(info["actions"][1]["causes"][0]) == set(real["actions"][1]["causes"][0])
    assert isinstance(info["timestamp"], int) and isinstance(info["duration"], int)
    assert {a["relativePath"] for a in info["artifacts"]} >= {"reports/trivy-app.json", "reports/jmeter.jtl"}


def test_job_info_has_the_keys_of_a_real_one(shared_fixture, server, fake):
    run_build(server, fake)
    info = server.get_job_info(JOB)
    real = json.loads(shared_fixture("jenkins/job_info_workflowjob.json").read_text())
    assert set(info) == set(real)
    assert info["_class"] == real["_class"]
    assert set(info["builds"][0]) == set(real["builds"][0])
    assert (info["name"], info["fullName"], info["nextBuildNumber"], info["color"]) == ("shop", JOB, 2, "blue")


# --- HTTP behaviour -------------------------------------------------------------------------------------


def test_its_api_and_every_post_require_basic_auth(server, fake):
    number = run_build(server, fake)
    for path in ("crumbIssuer/api/json", "me/api/json?depth=0", "job/delivery/job/shop/api/json?depth=0",
                 f"job/delivery/job/shop/{number}/api/json", "queue/item/100/api/json"):
        answer = requests.get(f"{fake.url}{path}", timeout=5)
        assert answer.status_code == 401, path
        assert answer.headers["X-Jenkins"] == "2.462.3"
    for path in ("job/delivery/job/shop/buildWithParameters?BRANCH=dev", f"job/delivery/job/shop/{number}/stop"):
        assert requests.post(f"{fake.url}{path}", timeout=5).status_code == 401, path
    assert requests.get(fake.url, auth=(USER, "wrong"), timeout=5).status_code == 401
    wrong = requests.get(f"{fake.url}job/delivery/job/shop/{number}/", auth=(USER, "wrong"), timeout=5)
    assert wrong.status_code == 401  # bad credentials are refused even where anonymous reading is allowed
    assert len(fake.jobs[JOB].builds) == 1


def test_a_browser_without_credentials_reads_the_build_page_and_console_the_portal_links_to(server, fake):
    fake.scenario = Scenario(fail_at="App checks")
    number = run_build(server, fake)
    build_url = f"{fake.url}job/delivery/job/shop/{number}/"  # the run page's "build" link
    page = requests.get(build_url, timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "Simulated Jenkins" in page.text and "not a real Jenkins" in page.text
    assert f"delivery/shop #{number}: FAILURE" in page.text and 'href="console"' in page.text
    console = requests.get(f"{build_url}console", timeout=5)  # the run page's "console" link
    assert console.status_code == 200 and "Simulated Jenkins" in console.text
    assert "ERROR: App checks failed (simulated)" in console.text and "Finished: FAILURE" in console.text
    text = requests.get(f"{build_url}consoleText", timeout=5)
    assert text.status_code == 200 and text.text.rstrip().endswith("Finished: FAILURE")
    job_page = requests.get(f"{fake.url}job/delivery/job/shop/", timeout=5)
    assert job_page.status_code == 200 and f'href="{build_url}"' in job_page.text
    assert requests.get(f"{fake.url}job/delivery/job/shop/{number + 1}/", timeout=5).status_code == 404


def test_the_pages_escape_what_builds_were_given(server, fake):
    number = run_build(server, fake, {"BRANCH": "<script>alert(1)</script>"})
    page = requests.get(f"{fake.url}job/delivery/job/shop/{number}/", timeout=5).text
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_a_forgotten_build_is_404(server, fake):
    number = run_build(server, fake)
    fake.forget_build(JOB, number)
    for path in ("api/json", "consoleText", ""):
        answer = session(fake).get(f"{fake.url}job/delivery/job/shop/{number}/{path}")
        assert answer.status_code == 404, path


def test_it_answers_the_version_header_and_a_crumb(fake):
    http = session(fake, crumb=False)
    assert http.get(fake.url).headers["X-Jenkins"] == "2.462.3"
    crumb = http.get(f"{fake.url}crumbIssuer/api/json").json()
    assert crumb["_class"] == "hudson.security.csrf.DefaultCrumbIssuer"
    assert crumb["crumbRequestField"] == "Jenkins-Crumb" and crumb["crumb"]


def test_posts_need_the_crumb(fake):
    url = f"{fake.url}job/delivery/job/shop/buildWithParameters?BRANCH=dev"
    assert session(fake, crumb=False).post(url).status_code == 403
    assert fake.queue == {}


def test_build_with_parameters_answers_201_with_the_queue_location(fake):
    url = f"{fake.url}job/delivery/job/shop/buildWithParameters?BRANCH=dev"
    answer = session(fake).post(url, allow_redirects=False)
    assert answer.status_code == 201
    assert answer.headers["Location"] == f"{fake.url}queue/item/100/"
    assert answer.content == b""


def test_stop_answers_302_to_the_build_page_and_the_build_ends_aborted(server, fake):
    fake.scenario = Scenario(hold_at="Checkout")
    queue_id = server.build_job(JOB, {"BRANCH": "dev"})
    while not server.get_queue_item(queue_id).get("executable"):
        time.sleep(0.02)
    http = session(fake)
    answer = http.post(f"{fake.url}job/delivery/job/shop/1/stop", allow_redirects=False)
    assert answer.status_code == 302
    assert answer.headers["Location"] == f"{fake.url}job/delivery/job/shop/1/"
    assert http.get(answer.headers["Location"]).status_code == 200
    assert fake.wait_for_builds(5)
    assert server.get_build_info(JOB, 1)["result"] == "ABORTED"


def test_unknown_jobs_builds_and_queue_items_are_404(fake):
    http = session(fake)
    for path in ("job/delivery/job/nope/api/json", "job/delivery/job/shop/9/api/json", "queue/item/5/api/json"):
        assert http.get(f"{fake.url}{path}").status_code == 404, path
    assert http.post(f"{fake.url}job/nope/buildWithParameters").status_code == 404


def test_queue_numbers_and_build_numbers_go_on(fake, server):
    fake.add_job("other", next_build_number=41)
    first = server.build_job("other", {"BRANCH": "dev"})
    second = server.build_job("other", {"BRANCH": "dev"})
    assert second == first + 1
    assert fake.wait_for_builds(10)
    assert sorted(fake.jobs["other"].builds) == [41, 42]


# --- the pipeline, played against the portal --------------------------------------------------------


def test_it_plays_the_dev_pipeline_callbacks_in_order(server, fake, recorder):
    number = run_build(server, fake, {"BRANCH": "dev", "COMMIT": "0123456789abcdef0123456789abcdef01234567",
                                      "PORTAL_RUN_ID": "12", "PORTAL_URL": "http://portal"})
    start, *_, end = recorder.calls
    assert all(call["auth"] == "Bearer dp_token" for call in recorder.calls)
    assert start["path"] == "/api/v1/projects/shop/runs/"
    assert start["json"] == {
        "build_number": number, "branch": "dev", "commit_sha": "0123456789abcdef0123456789abcdef01234567",
        "commit_title": "Simulated change on dev", "commit_author": "Simulated Developer", "status": "running",
        "started_at": start["json"]["started_at"], "build_url": f"{fake.url}job/delivery/job/shop/{number}/",
        "queue_id": fake.build(JOB, number).queue_id, "portal_run_id": 12,
    }
    assert end["json"] == {"build_number": number, "status": "success", "finished_at": end["json"]["finished_at"]}
    expected = []
    for name in DEV_STAGES:
        expected += [(name, "running"), (name, "success")]
    assert recorder.stage_updates() == expected
    run = f"runs/{number}/"
    paths = [p for p in recorder.paths() if not p.endswith("stages/")]
    assert paths == ["runs/"] + [run + "reports/"] * 2 + [run + "artifacts/"] * 2 + [run + "deployments/"] + [
        run + "reports/"] * 2 + ["runs/"]
    success = [c["json"] for c in recorder.calls if c["json"] and c["json"].get("status") == "success"
               and "duration_ms" in c["json"]]
    assert all(s["order"] >= 1 and s["started_at"] and s["finished_at"] for s in success)


def test_it_reports_images_reports_and_the_staging_deployment(server, fake, recorder):
    number = run_build(server, fake)
    artifacts = [c["json"] for c in recorder.calls if c["path"].endswith("/artifacts/")]
    assert [a["repository"].rsplit("/", 1)[-1] for a in artifacts] == ["app", "nginx"]
    assert all(len(a["digest"]) == 71 and a["digest"].startswith("sha256:") for a in artifacts)
    (deployment,) = [c["json"] for c in recorder.calls if c["path"].endswith("/deployments/")]
    assert deployment["environment"] == "staging" and deployment["status"] == "success"
    assert deployment["images"] == [{k: a[k] for k in ("repository", "tag", "digest")} for a in artifacts]
    uploads = [c for c in recorder.calls if c["path"].endswith("/reports/")]
    kinds = [c["body"].split(b'name="kind"\r\n\r\n')[1].split(b"\r\n")[0] for c in uploads]
    assert kinds == [b"trivy", b"trivy", b"gauntlt", b"jmeter"]
    assert all(c["content_type"].startswith("multipart/form-data") for c in uploads)
    jtl = uploads[-1]["body"]
    assert jtl.count(b"\n") > 300  # a header and 300 samples
    # Deterministic per build: the same build number gives the same Trivy report.
    assert b"CVE-" in uploads[0]["body"]
    assert number == 1


def test_it_plays_the_release_stages_and_deploys_production_on_master(server, fake, recorder):
    run_build(server, fake, {"BRANCH": "master"})
    assert [name for name, status in recorder.stage_updates() if status == "success"] == RELEASE_STAGES
    environments = [c["json"]["environment"] for c in recorder.calls if c["path"].endswith("/deployments/")]
    assert environments == ["staging", "production"]


def test_a_build_can_fail_at_a_stage(server, fake, recorder):
    fake.scenario = Scenario(fail_at="Trivy scan")
    number = run_build(server, fake)
    updates = recorder.stage_updates()
    assert ("Trivy scan", "failed") in updates
    assert [status for name, status in updates if name in DEV_STAGES[5:]] == ["skipped"] * 5
    assert not [c for c in recorder.calls if c["path"].endswith(("/reports/", "/artifacts/", "/deployments/"))]
    assert recorder.calls[-1]["json"]["status"] == "failed"
    assert server.get_build_info(JOB, number)["result"] == "FAILURE"


def test_a_held_build_reports_aborted_when_stopped(server, fake, recorder):
    fake.scenario = Scenario(hold_at="Build images")
    queue_id = server.build_job(JOB, {"BRANCH": "dev"})
    while ("Build images", "running") not in recorder.stage_updates():
        time.sleep(0.02)
    assert server.get_build_info(JOB, 1)["building"] is True
    server.stop_build(JOB, 1)
    assert fake.wait_for_builds(5)
    updates = recorder.stage_updates()
    assert ("Build images", "aborted") in updates
    assert [status for name, status in updates if name in DEV_STAGES[4:]] == ["skipped"] * 6
    assert recorder.calls[-1]["json"]["status"] == "aborted"
    assert server.get_queue_item(queue_id)["executable"]["number"] == 1


def test_failed_callbacks_are_retried_then_given_up_without_stopping_the_build(fake, server, recorder):
    recorder.statuses = [503]
    number = run_build(server, fake)
    assert server.get_build_info(JOB, number)["result"] == "SUCCESS"
    sent = len(fake.callbacks)
    assert len(recorder.calls) == sent * 3  # three attempts each
    assert all(status == 503 for _, _, status in fake.callbacks)


def test_a_callback_is_retried_until_it_passes(fake, server, recorder):
    recorder.statuses = [502, 201]
    run_build(server, fake)
    assert recorder.calls[0]["path"] == recorder.calls[1]["path"] == "/api/v1/projects/shop/runs/"
    assert fake.callbacks[0][2] == 201


def test_a_portal_that_is_down_does_not_crash_the_build(recorder):
    recorder.stop()
    with SimulatedJenkins(users={USER: TOKEN}, queue_seconds=0.05, speed=0.01, callback_attempts=2,
                     callback_backoff=0.01) as fake:
        fake.add_job(JOB, portal=PortalTarget(recorder.url, "shop", "dp_token"))
        server = python_jenkins.Jenkins(fake.url, username=USER, password=TOKEN, timeout=5)
        number = run_build(server, fake)
        assert server.get_build_info(JOB, number)["result"] == "SUCCESS"
        assert fake.callbacks and all(status is None for _, _, status in fake.callbacks)


# --- the demo's simulated Jenkins (manage.py simulated_jenkins) -------------------------------------------


@pytest.mark.django_db
def test_the_demo_keeps_one_token_per_project_in_a_private_file(tmp_path):
    import stat

    from deliveries.management.commands.simulated_jenkins import project_tokens
    from deliveries.models import ProjectToken
    from tests.factories import ProjectFactory

    shop, blog = ProjectFactory(slug="shop"), ProjectFactory(slug="blog")
    path = tmp_path / "simulated_jenkins_tokens.json"
    tokens = project_tokens([shop, blog], path)
    assert ProjectToken.find(tokens["shop"]).project == shop
    assert ProjectToken.find(tokens["blog"]).project == blog
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert project_tokens([shop, blog], path) == tokens  # reused on a restart
    ProjectToken.objects.filter(project=shop).update(revoked_at="2024-01-01T00:00Z")
    renewed = project_tokens([shop, blog], path)
    assert renewed["shop"] != tokens["shop"] and renewed["blog"] == tokens["blog"]
    assert ProjectToken.objects.filter(name="simulated-jenkins").count() == 3


@pytest.mark.django_db
def test_the_demo_jobs_check_the_health_urls_of_the_portals_staging_and_production():
    from deliveries.management.commands.simulated_jenkins import portal_target
    from tests.factories import EnvironmentFactory, ProjectFactory

    shop = ProjectFactory(slug="shop", release_branch="main")
    EnvironmentFactory(slug="staging", health_url="https://{project}.staging.example.com/healthz")
    EnvironmentFactory(slug="production", health_url="")  # none set: its checks are not reported
    target = portal_target(shop, portal_url="http://127.0.0.1:8000", token="dp_token")
    assert target == PortalTarget("http://127.0.0.1:8000", "shop", "dp_token", "main",
                                  staging_health_url="https://shop.staging.example.com/healthz")


def test_the_master_pipeline_asks_the_deploy_permission_first(server, fake, recorder):
    run_build(server, fake, {"BRANCH": "master", "COMMIT": "c" * 40})
    (gate,) = [c for c in recorder.calls if c.get("method") == "GET"]
    assert gate["path"] == f"/api/v1/projects/shop/deploy-permission/?environment=production&commit={'c' * 40}"
    assert gate["auth"] == "Bearer dp_token"
    assert recorder.calls.index(gate) < next(i for i, c in enumerate(recorder.calls)
                                             if c["path"].endswith("/deployments/")
                                             and c["json"]["environment"] == "production")


def test_a_refused_deploy_permission_fails_the_build_and_deploys_nothing_to_production(server, fake, recorder):
    recorder.permission = (403, {"detail": "production is frozen until tomorrow: release night"})
    number = run_build(server, fake, {"BRANCH": "master"})
    assert ("Deploy production", "failed") in recorder.stage_updates()
    environments = [c["json"]["environment"] for c in recorder.calls if c["path"].endswith("/deployments/")]
    assert environments == ["staging"]
    assert server.get_build_info(JOB, number)["result"] == "FAILURE"
    console = server.get_build_console_output(JOB, number)
    assert "HTTP 403): production is frozen until tomorrow: release night" in console


# --- availability checks, as the Jenkinsfile's portalCheck reports them --------------------------------------


STAGING_HEALTH = "https://shop.staging.example.com/healthz"
PRODUCTION_HEALTH = "https://shop.production.example.com/healthz"


@pytest.fixture
def checked(fake):
    """The job configured with STAGING_HEALTH_URL and PRODUCTION_HEALTH_URL."""
    job = fake.jobs[JOB]
    job.portal = dataclasses.replace(job.portal, staging_health_url=STAGING_HEALTH,
                                     production_health_url=PRODUCTION_HEALTH)
    return fake


def checks(recorder):
    return [call["json"] for call in recorder.calls if call["path"].endswith("/checks/")]


def test_its_availability_stage_reports_its_check_of_staging(server, checked, recorder):
    run_build(server, checked)
    assert checks(recorder) == [{"environment": "staging", "url": STAGING_HEALTH, "ok": True}]
    paths = recorder.paths()
    assert paths.index("checks/") > paths.index("runs/1/stages/")  # within the build, before it finishes
    assert recorder.calls[-1]["json"]["status"] == "success"


def test_a_failed_availability_stage_reports_a_failed_check_and_fails_the_build(server, checked, recorder):
    checked.scenario = Scenario(fail_at="Availability test")
    run_build(server, checked)
    assert checks(recorder) == [{"environment": "staging", "url": STAGING_HEALTH, "ok": False,
                                 "error": "ERROR: Availability test failed (simulated)"}]
    assert ("Availability test", "failed") in recorder.stage_updates()
    assert recorder.calls[-1]["json"]["status"] == "failed"


def test_a_release_build_reports_what_production_answers_once_deployed(server, checked, recorder):
    run_build(server, checked, {"BRANCH": "master"})
    assert [(check["environment"], check["url"], check["ok"]) for check in checks(recorder)] == [
        ("staging", STAGING_HEALTH, True), ("production", PRODUCTION_HEALTH, True)]
    deployed = next(i for i, call in enumerate(recorder.calls)
                    if call["path"].endswith("/deployments/") and call["json"]["environment"] == "production")
    after = recorder.calls[deployed + 1]  # the check of what production serves follows the deployment
    assert after["path"].endswith("/checks/") and after["json"]["environment"] == "production"


def test_a_failed_production_deployment_still_reports_what_production_answers(server, checked, recorder):
    checked.scenario = Scenario(fail_at="Deploy production")
    run_build(server, checked, {"BRANCH": "master"})
    assert checks(recorder)[-1] == {"environment": "production", "url": PRODUCTION_HEALTH, "ok": False,
                                    "error": "no answer 200 after 20 tries (exit 1)"}
    assert recorder.calls[-1]["json"]["status"] == "failed"


def test_without_health_urls_no_check_is_reported(server, fake, recorder):
    run_build(server, fake, {"BRANCH": "master"})
    assert checks(recorder) == []
