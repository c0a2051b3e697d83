"""`POST /api/v1/hooks/gitlab/`: GitLab's real payloads replayed, the secret, replays, pushes that start runs, merge
request events that keep promotions in step, and bad input. The last tests take deliveries from the imitation
GitLab over real HTTP."""

import copy
import json

import pytest

from deliveries import gitlab_hooks, triggers
from deliveries.models import (
    AuditEvent,
    GitLabHookDelivery,
    PipelineRun,
    Project,
    Promotion,
    RunStatus,
    RunTrigger,
)
from simulators.gitlab import SimulatedGitLab
from tests.factories import ProjectFactory, RunFactory, UserFactory

URL = "/api/v1/hooks/gitlab/"
PUSHED = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"  # "after" in GitLab's push example


@pytest.fixture
def jenkins(settings):
    settings.JENKINS_URL = "http://jenkins.example.com"  # runs are queued on commit: Jenkins is never called here


@pytest.fixture
def push_payload(shared_fixture):
    return json.loads(shared_fixture("gitlab/push_event.gitlab-docs.json").read_text())


@pytest.fixture
def mr_payload(shared_fixture):
    return json.loads(shared_fixture("gitlab/merge_request_event.gitlab-docs.json").read_text())


@pytest.fixture
def real_headers(shared_fixture):
    """The headers of a real Push Hook delivery, with our secret in place of the redacted one."""
    headers = json.loads(shared_fixture("gitlab/webhook_request_headers.gitlab-docs.json").read_text())
    del headers["_source"]
    return headers


def with_secret(project: Project) -> str:
    return gitlab_hooks.issue_webhook_secret(project=project, user=None)


@pytest.fixture
def diaspora(db):
    """The project of GitLab's push example (mike/diaspora, a push to master), starting runs on push."""
    project = ProjectFactory(slug="diaspora", gitlab_project_path="mike/diaspora", runs_on_push=True)
    project.secret = with_secret(project)
    return project


@pytest.fixture
def gitlab_test(db):
    """The project of GitLab's merge request example (gitlabhq/gitlab-test, MR !1), with a promotion on that MR."""
    project = ProjectFactory(slug="gitlab-test", gitlab_project_path="gitlabhq/gitlab-test")
    project.secret = with_secret(project)
    project.promotion = Promotion.objects.create(
        project=project, source_run=RunFactory(project=project, branch="dev"), requested_by=UserFactory(),
        mr_iid=1, mr_url="http://example.com/gitlabhq/gitlab-test/-/merge_requests/1", mr_state="")
    return project


def deliver(client, payload, *, token, event=None, key=None, uuid=None, headers=None):
    sent = dict(headers or {})
    sent.pop("Content-Type", None)
    if token is not None:
        sent["X-Gitlab-Token"] = token
    if event is not None:
        sent["X-Gitlab-Event"] = event
    if key is not None:
        sent["Idempotency-Key"] = key
    if uuid is not None:
        sent["X-Gitlab-Event-UUID"] = uuid
    body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
    return client.post(URL, data=body, content_type="application/json", headers=sent)


def nothing_recorded():
    return (GitLabHookDelivery.objects.count(), PipelineRun.objects.filter(trigger=RunTrigger.WEBHOOK).count(),
            AuditEvent.objects.exclude(action="gitlab_webhook_secret.issued").count()) == (0, 0, 0)


# --- a push -----------------------------------------------------------------------------------------------------


def test_it_replays_gitlab_s_push_with_its_real_headers_and_starts_a_run(
        client, diaspora, push_payload, real_headers, jenkins, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as queued:
        response = deliver(client, push_payload, token=diaspora.secret, headers=real_headers)
    assert response.status_code == 200, response.content
    run = PipelineRun.objects.get()
    assert response.json() == {"status": "triggered", "run": run.pk,
                               "detail": f"Run {run.pk} requested for master at {PUSHED[:8]}."}
    assert (run.project, run.branch, run.commit_sha, run.trigger, run.status) == (
        diaspora, "master", PUSHED, RunTrigger.WEBHOOK, RunStatus.QUEUED)
    assert len(queued) == 1  # the same task as the Run pipeline button: Jenkins is asked after the commit
    requested = AuditEvent.objects.get(action="run.requested")
    assert requested.data == {"branch": "master", "commit": PUSHED, "trigger": "webhook"}
    pushed = AuditEvent.objects.get(action="gitlab.push_run_requested")
    assert (pushed.actor_label, pushed.data["pusher"], pushed.data["before"]) == (
        "GitLab webhook", "jsmith", "95790bf891e76fee5e1747ab589903a6a1f80f22")
    assert GitLabHookDelivery.objects.get().key == real_headers["Idempotency-Key"]


def test_a_replayed_delivery_is_a_duplicate_and_starts_nothing_twice(client, diaspora, push_payload, jenkins):
    first = deliver(client, push_payload, token=diaspora.secret, event="Push Hook", key="key-1", uuid="uuid-1")
    again = deliver(client, push_payload, token=diaspora.secret, event="Push Hook", key="key-1", uuid="uuid-2")
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["status"] == "duplicate"
    assert PipelineRun.objects.count() == 1
    assert AuditEvent.objects.filter(action="run.requested").count() == 1


def test_without_an_idempotency_key_the_event_uuid_deduplicates(client, diaspora, push_payload, jenkins):
    for _ in range(2):
        response = deliver(client, push_payload, token=diaspora.secret, event="Push Hook", uuid="9cebe914")
    assert response.json()["status"] == "duplicate"
    assert PipelineRun.objects.count() == 1
    assert GitLabHookDelivery.objects.get().key == "9cebe914"


def test_the_same_key_for_another_project_is_not_a_duplicate(client, diaspora, push_payload, jenkins):
    other = ProjectFactory(gitlab_project_path="mike/other", runs_on_push=True)
    other_payload = copy.deepcopy(push_payload)
    other_payload["project"]["path_with_namespace"] = "mike/other"
    deliver(client, push_payload, token=diaspora.secret, event="Push Hook", key="same")
    response = deliver(client, other_payload, token=with_secret(other), event="Push Hook", key="same")
    assert response.json()["status"] == "triggered"
    assert PipelineRun.objects.count() == 2


@pytest.mark.parametrize("change, why", [
    ({"runs_on_push": False}, "does not start runs on push"),
    ({"release_branch": "main"}, "master is neither dev nor main"),
])
def test_a_push_starts_nothing_unless_the_project_asks_for_it_on_its_branches(
        client, diaspora, push_payload, jenkins, change, why):
    Project.objects.filter(pk=diaspora.pk).update(**change)
    response = deliver(client, push_payload, token=diaspora.secret, event="Push Hook", key="k")
    assert (response.status_code, response.json()["status"]) == (200, "ignored")
    assert why in response.json()["detail"]
    assert PipelineRun.objects.count() == 0
    assert GitLabHookDelivery.objects.get().outcome.startswith("ignored: ")  # handled: a replay stays a no-op


def test_a_deleted_branch_or_a_tag_starts_nothing(client, diaspora, push_payload, jenkins):
    deleted = {**push_payload, "after": "0" * 40, "checkout_sha": None}
    tag = {**push_payload, "ref": "refs/tags/v1.0"}
    for payload, detail in ((deleted, "Branch master was deleted."), (tag, "Not a branch push.")):
        response = deliver(client, payload, token=diaspora.secret, event="Push Hook")
        assert response.json() == {"status": "ignored", "detail": detail}
    assert PipelineRun.objects.count() == 0


def test_a_push_when_the_portal_cannot_start_runs_says_why(client, diaspora, push_payload, settings):
    settings.JENKINS_URL = ""
    response = deliver(client, push_payload, token=diaspora.secret, event="Push Hook")
    assert response.json()["status"] == "ignored"
    assert "Jenkins is not configured" in response.json()["detail"]
    assert PipelineRun.objects.count() == 0


# --- a merge request ----------------------------------------------------------------------------------------------


def test_it_replays_gitlab_s_merge_request_event_and_syncs_the_promotion(client, gitlab_test, mr_payload):
    response = deliver(client, mr_payload, token=gitlab_test.secret, event="Merge Request Hook", key="mr-1")
    assert response.status_code == 200, response.content
    promotion = gitlab_test.promotion
    assert response.json() == {"status": "synced", "detail": "Merge request !1 is opened.",
                               "promotions": [promotion.pk]}
    promotion.refresh_from_db()
    assert promotion.mr_state == "opened"
    event = AuditEvent.objects.get(action="promotion.mr_state_changed")
    assert (event.target_type, event.target_id, event.project) == ("promotion", str(promotion.pk), gitlab_test)
    assert event.data == {"mr": 1, "from": "", "to": "opened", "action": "open", "by": "root",
                          "last_commit": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"}


def as_state(payload, state, action):
    changed = copy.deepcopy(payload)
    changed["object_attributes"].update(state=state, action=action)
    return changed


def test_an_mr_merged_or_closed_outside_the_portal_shows_as_such(client, gitlab_test, mr_payload):
    promotion = gitlab_test.promotion
    deliver(client, as_state(mr_payload, "closed", "close"), token=gitlab_test.secret, event="Merge Request Hook")
    promotion.refresh_from_db()
    assert promotion.mr_state == "closed"
    deliver(client, as_state(mr_payload, "merged", "merge"), token=gitlab_test.secret, event="Merge Request Hook")
    promotion.refresh_from_db()
    assert promotion.mr_state == "merged"
    late = deliver(client, as_state(mr_payload, "opened", "update"), token=gitlab_test.secret,
                   event="Merge Request Hook")
    assert late.json()["status"] == "ignored"  # an older event arriving late does not undo the merge
    promotion.refresh_from_db()
    assert promotion.mr_state == "merged"
    assert [e.data["to"] for e in AuditEvent.objects.filter(action="promotion.mr_state_changed")
            .order_by("id")] == ["closed", "merged"]


def test_an_mr_no_promotion_uses_is_ignored(client, gitlab_test, mr_payload):
    mr_payload["object_attributes"]["iid"] = 42
    response = deliver(client, mr_payload, token=gitlab_test.secret, event="Merge Request Hook")
    assert response.json() == {"status": "ignored", "detail": "No promotion uses merge request !42."}
    assert not AuditEvent.objects.filter(action="promotion.mr_state_changed").exists()


# --- who may deliver ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "wrong-secret"])
def test_a_missing_or_wrong_token_is_401_and_nothing_is_recorded(client, diaspora, push_payload, jenkins, token):
    response = deliver(client, push_payload, token=token, event="Push Hook", key="k")
    assert response.status_code == 401
    assert nothing_recorded()


def test_another_project_s_secret_or_an_unknown_path_is_401(client, diaspora, gitlab_test, push_payload, jenkins):
    assert deliver(client, push_payload, token=gitlab_test.secret, event="Push Hook").status_code == 401
    push_payload["project"]["path_with_namespace"] = "mike/unknown"
    assert deliver(client, push_payload, token=diaspora.secret, event="Push Hook").status_code == 401
    assert nothing_recorded()


def test_a_project_without_a_secret_accepts_no_delivery(client, db, push_payload, jenkins):
    ProjectFactory(gitlab_project_path="mike/diaspora", runs_on_push=True)
    assert deliver(client, push_payload, token="anything", event="Push Hook").status_code == 401
    assert deliver(client, push_payload, token="", event="Push Hook").status_code == 401


def test_two_projects_on_one_gitlab_path_are_told_apart_by_their_secret(client, diaspora, push_payload, jenkins):
    twin = ProjectFactory(slug="diaspora-twin", gitlab_project_path="Mike/Diaspora", runs_on_push=True)
    response = deliver(client, push_payload, token=with_secret(twin), event="Push Hook")
    assert response.status_code == 200
    assert PipelineRun.objects.get().project == twin


def test_a_new_secret_replaces_the_old_one_and_only_its_hash_is_stored(client, diaspora, push_payload, jenkins):
    old = diaspora.secret
    new = with_secret(diaspora)
    diaspora.refresh_from_db()
    assert new not in diaspora.gitlab_webhook_secret_hash and len(diaspora.gitlab_webhook_secret_hash) == 64
    assert deliver(client, push_payload, token=old, event="Push Hook").status_code == 401
    assert deliver(client, push_payload, token=new, event="Push Hook").status_code == 200
    assert AuditEvent.objects.filter(action="gitlab_webhook_secret.issued", project=diaspora).count() == 2


# --- bad input ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mangle, event, field", [
    (lambda p: p.pop("project"), "Push Hook", "project"),
    (lambda p: p["project"].pop("path_with_namespace"), "Push Hook", "project.path_with_namespace"),
    (lambda p: p.update(after="not-a-sha"), "Push Hook", "after"),
    (lambda p: p.pop("ref"), "Push Hook", "ref"),
    (lambda p: p.update(object_kind="merge_request"), "Push Hook", "object_kind"),
])
def test_a_malformed_push_is_400_naming_the_field(client, diaspora, push_payload, jenkins, mangle, event, field):
    mangle(push_payload)
    response = deliver(client, push_payload, token=diaspora.secret, event=event, key="k")
    assert response.status_code == 400
    assert field in response.json()
    assert nothing_recorded()


@pytest.mark.parametrize("mangle, field", [
    (lambda p: p.pop("object_attributes"), "object_attributes"),
    (lambda p: p["object_attributes"].update(iid="1"), "object_attributes.iid"),
    (lambda p: p["object_attributes"].update(state="exploded"), "object_attributes.state"),
    (lambda p: p["object_attributes"].update(last_commit="da15608"), "object_attributes.last_commit"),
])
def test_a_malformed_merge_request_event_is_400_naming_the_field(client, gitlab_test, mr_payload, mangle, field):
    mangle(mr_payload)
    response = deliver(client, mr_payload, token=gitlab_test.secret, event="Merge Request Hook")
    assert response.status_code == 400
    assert list(response.json()) == [field]
    gitlab_test.promotion.refresh_from_db()
    assert gitlab_test.promotion.mr_state == ""


def test_a_body_that_is_not_a_json_object_is_400(client, diaspora):
    assert deliver(client, "{not json", token=diaspora.secret, event="Push Hook").status_code == 400
    response = deliver(client, "[1, 2]", token=diaspora.secret, event="Push Hook")
    assert (response.status_code, response.json()) == (400, {"payload": ["must be a JSON object"]})


def test_an_overlong_idempotency_key_is_400(client, diaspora, push_payload, jenkins):
    response = deliver(client, push_payload, token=diaspora.secret, event="Push Hook", key="k" * 300)
    assert (response.status_code, list(response.json())) == (400, ["Idempotency-Key"])
    assert nothing_recorded()


def test_events_the_portal_does_not_handle_are_202_ignored(client, diaspora, push_payload):
    pipeline = {**push_payload, "object_kind": "pipeline"}
    response = deliver(client, pipeline, token=diaspora.secret, event="Pipeline Hook")
    assert (response.status_code, response.json()["status"]) == (202, "ignored")
    system = {"event_name": "user_create", "username": "jsmith"}  # a system hook names no project
    assert deliver(client, system, token="any", event="System Hook").status_code == 202
    assert deliver(client, pipeline, token="wrong", event="Pipeline Hook").status_code == 401
    assert nothing_recorded()


def test_it_refuses_other_methods(client, diaspora):
    assert client.get(URL, headers={"X-Gitlab-Token": diaspora.secret}).status_code == 405


def test_the_endpoint_is_in_the_openapi_schema(client):
    schema = client.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/hooks/gitlab/"]["post"]
    assert {"200", "202", "400", "401"} <= set(operation["responses"])
    assert {p["name"] for p in operation["parameters"]} >= {"X-Gitlab-Token", "Idempotency-Key",
                                                            "X-Gitlab-Event-UUID", "X-Gitlab-Event"}


# --- from the imitation GitLab, over real HTTP --------------------------------------------------------------------


@pytest.fixture
def queued_runs(monkeypatch):
    """Runs the portal queued (the task is not run: there is no Jenkins behind it here)."""
    queued = []
    monkeypatch.setattr(triggers, "queue_task", lambda function, run_id, verb: queued.append(run_id))
    return queued


@pytest.mark.django_db(transaction=True)
def test_deliveries_from_the_imitation_gitlab_start_runs_and_sync_promotions(live_server, settings, queued_runs):
    settings.JENKINS_URL = "http://jenkins.example.com"
    project = ProjectFactory(slug="shop", gitlab_project_path="delivery/shop", runs_on_push=True)
    secret = with_secret(project)
    with SimulatedGitLab(tokens={"glpat-bot": "portal-bot"}) as gitlab:
        gitlab.add_project("delivery/shop", branches={"dev": None, "master": None})
        gitlab.add_hook("delivery/shop", url=f"{live_server.url}{URL}", token=secret)
        mr = gitlab.open_merge_request("delivery/shop", source_branch="dev", target_branch="master",
                                       author="dana.dev")
        promotion = Promotion.objects.create(project=project, source_run=RunFactory(project=project),
                                             requested_by=UserFactory(), mr_iid=mr.iid, mr_state="opened")
        sha = gitlab.push("delivery/shop", "dev", message="Fix the basket")
        gitlab.merge("delivery/shop", mr.iid, user="tom.lead")  # in GitLab's web UI, not through the portal
        assert gitlab.wait_for_hooks()
        assert [d.status for d in gitlab.deliveries] == [200] * 5  # open, push dev, update, push master, merge
        gitlab.redeliver(gitlab.deliveries[1])
        assert gitlab.wait_for_hooks()
    promotion.refresh_from_db()
    assert promotion.mr_state == "merged"
    runs = PipelineRun.objects.order_by("id")
    assert [(run.branch, run.commit_sha, run.trigger) for run in runs.exclude(pk=promotion.source_run_id)] == [
        ("dev", sha, "webhook"), ("master", gitlab.project("delivery/shop").branches["master"], "webhook")]
    assert len(queued_runs) == 2  # the resent push started nothing
    assert GitLabHookDelivery.objects.count() == 5


def test_issuing_a_webhook_secret_in_the_admin_shows_it_once_and_audits_it(client, diaspora):
    from django.urls import reverse

    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    response = client.post(reverse("admin:deliveries_project_changelist"),
                           {"action": "issue_gitlab_webhook_secret", "_selected_action": [diaspora.pk]})
    [(shown_for, secret)] = response.context["issued"]
    assert shown_for == diaspora and "http://testserver/api/v1/hooks/gitlab/" in response.content.decode()
    assert all(secret not in morsel.value for morsel in response.cookies.values())  # not in the messages cookie
    diaspora.refresh_from_db()
    assert diaspora.gitlab_webhook_secret_matches(secret) and not diaspora.gitlab_webhook_secret_matches(
        diaspora.secret)
    assert AuditEvent.objects.filter(action="gitlab_webhook_secret.issued", actor=admin).count() == 1
    listed = client.get(reverse("admin:deliveries_project_changelist")).content.decode()
    assert secret not in listed and diaspora.gitlab_webhook_secret_hash not in listed
