"""python-jenkins, unchanged, against the imitation; and the portal's client turning its errors into reasons."""

import logging
import socket
import time

import jenkins as python_jenkins
import pytest

from deliveries import jenkins
from deliveries.jenkins import JenkinsError
from simulators.jenkins import Scenario, SimulatedJenkins

USER, TOKEN = "portal", "s3cret-api-token"
JOB = "delivery/shop"


@pytest.fixture
def fake():
    with SimulatedJenkins(users={USER: TOKEN}, queue_seconds=0.2) as fake:
        fake.add_job(JOB)
        yield fake


@pytest.fixture
def server(fake):
    return python_jenkins.Jenkins(fake.url, username=USER, password=TOKEN, timeout=5)


@pytest.fixture
def configured(settings, fake):
    settings.JENKINS_URL = fake.url.rstrip("/")
    settings.JENKINS_USER = USER
    settings.JENKINS_TOKEN = TOKEN
    settings.SITE_URL = "http://portal.example.com"
    return settings


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


# --- python-jenkins against the imitation -------------------------------------------------------------


def test_it_answers_whoami_and_version(server):
    assert server.get_whoami()["id"] == USER
    # As on a Jenkins that refuses anonymous reads, get_version needs the session authenticated first
    # (python-jenkins' own docs call get_whoami before it).
    assert server.get_version() == "2.462.3"


def test_it_answers_job_info_for_a_folder_path(server, fake):
    info = server.get_job_info(JOB)
    assert info["fullName"] == JOB
    assert info["url"] == f"{fake.url}job/delivery/job/shop/"
    assert fake.saw("GET", "/job/delivery/job/shop/api/json?depth=0")


def test_it_queues_a_build_and_the_item_leaves_the_queue_as_a_build(server, fake):
    queue_id = server.build_job(JOB, {"BRANCH": "dev", "COMMIT": "", "PORTAL_RUN_ID": "7", "PORTAL_URL": "http://p"})
    waiting = server.get_queue_item(queue_id)
    assert waiting["_class"] == "hudson.model.Queue$WaitingItem"
    assert waiting["why"] and "executable" not in waiting
    left = wait_for(lambda: (item := server.get_queue_item(queue_id)).get("executable") and item)
    assert left["_class"] == "hudson.model.Queue$LeftItem"
    assert left["why"] is None and left["cancelled"] is False
    assert left["executable"]["number"] == 1
    assert left["executable"]["url"] == f"{fake.url}job/delivery/job/shop/1/"
    assert fake.saw("POST", "/job/delivery/job/shop/buildWithParameters?BRANCH=dev&COMMIT=&PORTAL_RUN_ID=7")


def test_build_info_has_no_result_while_building(server, fake):
    fake.scenario = Scenario(hold_at="App checks")
    queue_id = server.build_job(JOB, {"BRANCH": "dev"})
    number = wait_for(lambda: server.get_queue_item(queue_id).get("executable"))["number"]
    info = server.get_build_info(JOB, number)
    assert info["building"] is True and info["result"] is None
    assert info["queueId"] == queue_id
    parameters = {p["name"]: p["value"] for p in info["actions"][0]["parameters"]}
    assert parameters == {"BRANCH": "dev"}
    wait_for(lambda: "(App checks)" in server.get_build_console_output(JOB, number))
    server.stop_build(JOB, number)
    assert fake.wait_for_builds(5)
    info = server.get_build_info(JOB, number)
    assert info["building"] is False and info["result"] == "ABORTED"
    assert info["duration"] > 0
    assert server.get_build_console_output(JOB, number).rstrip().endswith("Finished: ABORTED")
    assert fake.saw("POST", f"/job/delivery/job/shop/{number}/stop")


def test_a_finished_build_says_success(server, fake):
    queue_id = server.build_job(JOB, {"BRANCH": "dev"})
    number = wait_for(lambda: server.get_queue_item(queue_id).get("executable"))["number"]
    assert fake.wait_for_builds(10)
    info = server.get_build_info(JOB, number)
    assert (info["building"], info["result"]) == (False, "SUCCESS")
    assert "Finished: SUCCESS" in server.get_build_console_output(JOB, number)


def test_cancel_queue_cancels_a_waiting_item(fake):
    fake.queue_seconds = 5
    server = python_jenkins.Jenkins(fake.url, username=USER, password=TOKEN, timeout=5)
    queue_id = server.build_job(JOB, {"BRANCH": "dev"})
    server.cancel_queue(queue_id)
    item = server.get_queue_item(queue_id)
    assert item["cancelled"] is True and item["executable"] is None
    assert fake.saw("POST", f"/queue/cancelItem?id={queue_id}")


def test_a_wrong_password_is_a_jenkins_exception(fake):
    server = python_jenkins.Jenkins(fake.url, username=USER, password="wrong", timeout=5)
    with pytest.raises(python_jenkins.JenkinsException, match=r"\[401\]"):
        server.get_whoami()


def test_an_unknown_job_is_not_found(server):
    with pytest.raises(python_jenkins.NotFoundException):
        server.build_job("delivery/nope", {"BRANCH": "dev"})
    with pytest.raises(python_jenkins.JenkinsException, match="does not exist"):
        server.get_job_info("delivery/nope")


# --- the portal's client ----------------------------------------------------------------------------


def test_it_triggers_with_the_portal_parameters(configured, fake):
    queue_id = jenkins.trigger(JOB, branch="feature/x", commit="abc1234", run_id=42)
    item = fake.queue[queue_id]
    assert item.params == {
        "BRANCH": "feature/x", "COMMIT": "abc1234", "PORTAL_RUN_ID": "42", "PORTAL_URL": "http://portal.example.com",
    }


def test_it_follows_a_queue_item_to_its_build(configured, fake):
    queue_id = jenkins.trigger(JOB, branch="dev", commit="", run_id=1)
    assert jenkins.queue_state(queue_id).waiting
    state = wait_for(lambda: (s := jenkins.queue_state(queue_id)).build_number and s)
    assert state.build_number == 1
    assert state.build_url == f"{fake.url}job/delivery/job/shop/1/"
    assert jenkins.build_info(JOB, 1)["number"] == 1
    assert "Started by user portal" in jenkins.console_output(JOB, 1)


def test_it_says_when_a_queue_item_was_cancelled(configured, fake):
    fake.queue_seconds = 5
    queue_id = jenkins.trigger(JOB, branch="dev", commit="", run_id=1)
    jenkins.cancel(queue_id)
    assert jenkins.queue_state(queue_id).cancelled
    jenkins.cancel(queue_id)  # again: Jenkins answers 404, which python-jenkins ignores


def test_it_says_jenkins_is_unreachable(settings):
    settings.JENKINS_URL = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(JenkinsError) as caught:
        jenkins.trigger(JOB, branch="dev", commit="", run_id=1)
    assert caught.value.reason == f"Jenkins at {settings.JENKINS_URL} is unreachable."
    assert caught.value.retryable


def test_it_says_jenkins_refused_the_credentials(configured, caplog):
    configured.JENKINS_TOKEN = "wrong"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(JenkinsError) as caught:
        jenkins.trigger(JOB, branch="dev", commit="", run_id=1)
    assert caught.value.reason == "Jenkins refused the credentials (401)."
    assert (caught.value.status, caught.value.retryable) == (401, False)
    assert TOKEN not in caplog.text and "wrong" not in caught.value.reason


def test_it_says_jenkins_has_no_such_job(configured):
    with pytest.raises(JenkinsError) as caught:
        jenkins.trigger("delivery/nope", branch="dev", commit="", run_id=1)
    assert caught.value.reason == "Jenkins has no job delivery/nope (404)."
    assert (caught.value.status, caught.value.retryable) == (404, False)


def test_it_says_a_queue_item_or_build_is_missing(configured):
    with pytest.raises(JenkinsError, match=r"Jenkins has no queue item 999 \(404\)"):
        jenkins.queue_state(999)
    with pytest.raises(JenkinsError, match=r"Jenkins has no build #5 of delivery/shop \(404\)"):
        jenkins.build_info(JOB, 5)


def test_it_refuses_to_work_without_a_jenkins_url(settings):
    settings.JENKINS_URL = ""
    assert not jenkins.is_configured()
    with pytest.raises(JenkinsError, match="JENKINS_URL is empty"):
        jenkins.trigger(JOB, branch="dev", commit="", run_id=1)


def test_it_hides_a_password_in_the_url_it_shows(settings):
    settings.JENKINS_URL = f"http://me:pw@127.0.0.1:{closed_port()}"
    with pytest.raises(JenkinsError) as caught:
        jenkins.queue_state(1)
    assert "pw" not in caught.value.reason and "me:***@" in caught.value.reason
