"""The imitation GitLab is only worth what it matches: its JSON against GitLab's real payloads, driven by
python-gitlab itself (unchanged), its refusals as GitLab's API gives them, and the webhooks it sends."""

import json

import gitlab
import pytest
import requests

from simulators.gitlab import SimulatedGitLab
from tests.simulators.recorder import Recorder

BOT, LEAD = "glpat-portal-bot", "glpat-tom-lead"
SHOP = "delivery/shop"


def hook_events(recorder) -> list[tuple[str, str]]:
    """(X-Gitlab-Event, action or ref) of every delivery, in order."""
    return [(c["headers"]["X-Gitlab-Event"],
             c["json"].get("object_attributes", {}).get("action") or c["json"].get("ref")) for c in recorder.calls]


@pytest.fixture
def simulated():
    with SimulatedGitLab(tokens={BOT: "portal-bot", LEAD: "tom.lead"}) as simulated:
        simulated.add_project(SHOP, branches={"dev": None, "master": None})
        yield simulated


@pytest.fixture
def recorder(simulated):
    recorder = Recorder(statuses=(200,))
    simulated.add_hook(SHOP, url=f"{recorder.url}/hooks/", token="hook-secret")
    yield recorder
    recorder.stop()


def api(simulated, token=BOT) -> gitlab.Gitlab:
    return gitlab.Gitlab(simulated.url, private_token=token, timeout=5)


def shop(simulated, token=BOT):
    return api(simulated, token).projects.get(SHOP)


def open_mr(simulated, token=BOT, source="dev", target="master"):
    return shop(simulated, token).mergerequests.create(
        {"source_branch": source, "target_branch": target, "title": f"Promote {source}"})


def assert_same_shape(real, ours, where="$", loose=frozenset()):
    """Every key of GitLab's payload is in ours, with a value of the same JSON type where both are set."""
    if isinstance(real, dict):
        assert isinstance(ours, dict), f"{where} is {type(ours).__name__}, GitLab sends an object"
        missing = sorted(set(real) - set(ours))
        assert not missing, f"{where} lacks {missing}"
        for key, value in real.items():
            if key not in loose and value is not None and ours[key] is not None:
                assert_same_shape(value, ours[key], f"{where}.{key}", loose)
    elif isinstance(real, list):
        assert isinstance(ours, list), f"{where} is {type(ours).__name__}, GitLab sends a list"
        if real and ours:
            assert_same_shape(real[0], ours[0], f"{where}[0]", loose)
    else:
        assert type(ours) is type(real), f"{where} is {type(ours).__name__}, GitLab sends {type(real).__name__}"


def read_fixture(shared_fixture, name):
    return json.loads(shared_fixture(f"gitlab/{name}").read_text())


# --- the JSON, against GitLab's own ---------------------------------------------------------------------------


def test_a_merge_request_has_the_keys_and_types_of_gitlab_s(simulated, shared_fixture):
    real = read_fixture(shared_fixture, "merge_request_get.gitlab-com-2019.json")
    iid = open_mr(simulated).iid
    ours = requests.get(f"{simulated.url}/api/v4/projects/{SHOP.replace('/', '%2F')}/merge_requests/{iid}",
                        headers={"PRIVATE-TOKEN": BOT}, timeout=5).json()
    assert_same_shape(real, ours)
    # What GitLab added after 15.6, which the 2019 capture predates.
    assert {"detailed_merge_status", "draft", "merge_user", "merge_after", "prepared_at"} <= set(ours)
    simulated.merge(SHOP, iid, user="tom.lead")
    merged = api(simulated).projects.get(SHOP).mergerequests.get(iid).attributes
    assert_same_shape(real["author"], merged["merged_by"], "$.merged_by")


def test_its_webhooks_have_the_keys_types_and_headers_of_gitlab_s(simulated, recorder, shared_fixture):
    sha = simulated.push(SHOP, "dev", message="Fix the basket")
    open_mr(simulated)
    assert simulated.wait_for_hooks()
    push, opened = recorder.calls
    assert_same_shape(read_fixture(shared_fixture, "push_event.gitlab-docs.json"), push["json"])
    assert_same_shape(read_fixture(shared_fixture, "merge_request_event.gitlab-docs.json"), opened["json"],
                      loose={"changes"})  # which fields changed depends on the event
    assert (push["json"]["after"], push["json"]["ref"], push["json"]["checkout_sha"]) == (sha, "refs/heads/dev", sha)
    assert push["json"]["project"]["path_with_namespace"] == SHOP
    real_headers = read_fixture(shared_fixture, "webhook_request_headers.gitlab-docs.json")
    sent = {name.lower() for name in push["headers"]}
    assert {name.lower() for name in real_headers if not name.startswith("_")} <= sent
    assert (push["headers"]["X-Gitlab-Event"], opened["headers"]["X-Gitlab-Event"]) == ("Push Hook",
                                                                                        "Merge Request Hook")
    assert push["headers"]["X-Gitlab-Token"] == "hook-secret"
    assert push["headers"]["Idempotency-Key"] != opened["headers"]["Idempotency-Key"]


def test_it_answers_version_and_the_current_user_as_python_gitlab_expects(simulated, recwarn):
    gl = api(simulated)
    gl.auth()
    assert gl.user.username == "portal-bot"
    assert gl.user.web_url.startswith(simulated.url)  # else python-gitlab warns of a misconfigured URL
    assert not [w for w in recwarn if "base URL" in str(w.message)]
    version, revision = gl.version()
    assert version.count(".") == 2 and revision != "unknown"


def test_it_refuses_a_missing_or_wrong_token(simulated):
    with pytest.raises(gitlab.GitlabAuthenticationError) as refused:
        api(simulated, token="glpat-wrong").auth()
    assert refused.value.response_code == 401
    answer = requests.get(f"{simulated.url}/api/v4/version", timeout=5)
    assert (answer.status_code, answer.json()) == (401, {"message": "401 Unauthorized"})


def test_projects_are_found_by_id_or_url_encoded_path(simulated):
    by_path = shop(simulated)
    assert api(simulated).projects.get(by_path.id).path_with_namespace == SHOP
    with pytest.raises(gitlab.GitlabGetError) as missing:
        api(simulated).projects.get("delivery/nope")
    assert missing.value.response_code == 404


def test_sudo_acts_as_another_user_for_admins_only(simulated):
    simulated.add_user("root", token="glpat-root", is_admin=True)
    simulated.add_user("dana.dev")
    gl = api(simulated, "glpat-root")
    mr = gl.projects.get(SHOP).mergerequests.create(
        {"source_branch": "dev", "target_branch": "master", "title": "As Dana"}, sudo="dana.dev")
    assert mr.author["username"] == "dana.dev"
    with pytest.raises(gitlab.GitlabGetError) as refused:
        shop(simulated).mergerequests.get(mr.iid, sudo="root")
    assert refused.value.response_code == 403


# --- merge requests -------------------------------------------------------------------------------------------


def test_creating_a_merge_request_answers_201_and_a_second_one_for_the_same_branches_409(simulated):
    mr = open_mr(simulated)
    assert (mr.iid, mr.state, mr.source_branch, mr.target_branch) == (1, "opened", "dev", "master")
    assert mr.sha == simulated.project(SHOP).branches["dev"]
    assert mr.web_url == f"{simulated.url}/{SHOP}/-/merge_requests/1"
    assert simulated.saw("GET", "/api/v4/projects/delivery%2Fshop")  # python-gitlab's URL-encoded path
    with pytest.raises(gitlab.GitlabCreateError) as duplicate:
        open_mr(simulated)
    assert duplicate.value.response_code == 409
    assert duplicate.value.error_message == ["Another open merge request already exists for this source branch: !1"]
    simulated.close(SHOP, 1)
    assert open_mr(simulated).iid == 2  # once closed, a new one may be opened


def test_a_merge_request_needs_existing_different_branches_and_a_title(simulated):
    project = shop(simulated)
    for fields, status in [({"source_branch": "nope", "target_branch": "master", "title": "t"}, 409),
                           ({"source_branch": "dev", "target_branch": "dev", "title": "t"}, 409),
                           ({"source_branch": "dev", "target_branch": "master", "title": ""}, 400)]:
        with pytest.raises(gitlab.GitlabCreateError) as refused:
            project.mergerequests.create(fields)
        assert refused.value.response_code == status, fields


def test_merge_requests_are_listed_with_filters_and_gitlab_s_paging(simulated):
    project = shop(simulated)
    for number in range(25):
        simulated.push(SHOP, f"feature-{number}")
        project.mergerequests.create({"source_branch": f"feature-{number}", "target_branch": "dev", "title": "f"})
    simulated.close(SHOP, 3)
    assert len(project.mergerequests.list(state="opened", get_all=False)) == 20
    pages = project.mergerequests.list(state="opened", iterator=True)
    assert (pages.total, pages.next_page, pages.total_pages, pages.per_page) == (24, 2, 2, 20)
    assert len(project.mergerequests.list(state="opened", get_all=True)) == 24
    assert len(list(project.mergerequests.list(iterator=True, per_page=7))) == 25  # follows the Link header
    assert [mr.iid for mr in project.mergerequests.list(state="closed", get_all=True)] == [3]
    only = project.mergerequests.list(source_branch="feature-4", target_branch="dev", get_all=True)
    assert [mr.iid for mr in only] == [5]
    assert project.mergerequests.list(source_branch="feature-4", target_branch="master", get_all=True) == []


def test_approve_answers_201_and_refuses_the_author_a_second_approval_and_a_stale_sha(simulated):
    iid = open_mr(simulated).iid  # opened by the portal's user
    head = simulated.project(SHOP).branches["dev"]
    with pytest.raises(gitlab.GitlabAuthenticationError) as own:
        shop(simulated).mergerequests.get(iid).approve(sha=head)
    assert own.value.response_code == 401
    lead_mr = shop(simulated, LEAD).mergerequests.get(iid)
    with pytest.raises(gitlab.GitlabMRApprovalError) as stale:
        lead_mr.approve(sha="f" * 40)
    assert (stale.value.response_code, stale.value.error_message) == (
        409, f"SHA does not match HEAD of source branch: {head}")
    approval = lead_mr.approve(sha=head)
    assert (approval["approved"], approval["approvals_left"]) == (True, 0)
    assert [row["user"]["username"] for row in approval["approved_by"]] == ["tom.lead"]
    with pytest.raises(gitlab.GitlabAuthenticationError):
        shop(simulated, LEAD).mergerequests.get(iid).approve()  # twice
    assert simulated.merge_request(SHOP, iid).detailed_merge_status == "mergeable"


def test_a_project_may_let_authors_approve_their_own_merge_requests(simulated):
    simulated.add_project("delivery/blog", branches={"dev": None, "master": None}, author_can_approve=True)
    project = api(simulated).projects.get("delivery/blog")
    mr = project.mergerequests.create({"source_branch": "dev", "target_branch": "master", "title": "t"})
    assert mr.approve()["approved"] is True


def test_merge_answers_200_merged_and_moves_the_target_branch(simulated):
    iid = open_mr(simulated).iid
    lead_mr = shop(simulated, LEAD).mergerequests.get(iid)
    head = lead_mr.sha
    lead_mr.approve(sha=head)
    merged = shop(simulated).mergerequests.get(iid).merge(sha=head, merge_commit_message="Promote run 12")
    assert merged["state"] == "merged" and len(merged["merge_commit_sha"]) == 40
    assert merged["merged_by"]["username"] == "portal-bot"
    assert simulated.project(SHOP).branches["master"] == merged["merge_commit_sha"]
    assert shop(simulated).branches.get("master").commit["message"] == "Promote run 12"


def test_merge_refuses_a_sha_that_is_not_the_head_with_409(simulated):
    iid = open_mr(simulated).iid
    simulated.project(SHOP).approvals_required = 0
    tested = simulated.project(SHOP).branches["dev"]
    moved = simulated.push(SHOP, "dev", message="Someone pushed after the tested run")
    mr = shop(simulated).mergerequests.get(iid)
    assert mr.sha == moved and mr.diff_refs["head_sha"] == moved  # the MR follows its source branch
    with pytest.raises(gitlab.GitlabMRClosedError) as refused:
        mr.merge(sha=tested)
    assert (refused.value.response_code, refused.value.error_message) == (
        409, f"SHA does not match HEAD of source branch: {moved}")
    assert simulated.merge_request(SHOP, iid).state == "opened"


def test_merge_answers_405_when_not_mergeable_and_422_when_asked_to_merge_later(simulated):
    iid = open_mr(simulated).iid
    mr = shop(simulated).mergerequests.get(iid)
    with pytest.raises(gitlab.GitlabMRClosedError) as unapproved:
        mr.merge()
    assert unapproved.value.response_code == 405
    simulated.project(SHOP).approvals_required = 0
    simulated.set_conflict(SHOP, iid)
    assert shop(simulated).mergerequests.get(iid).detailed_merge_status == "conflict"
    with pytest.raises(gitlab.GitlabMRClosedError) as conflict:
        mr.merge()
    assert (conflict.value.response_code, conflict.value.error_message) == (405, "405 Method Not Allowed")
    with pytest.raises(gitlab.GitlabMRClosedError) as later:
        mr.merge(merge_when_pipeline_succeeds=True)
    assert (later.value.response_code, later.value.error_message) == (422, "Branch cannot be merged")
    simulated.set_conflict(SHOP, iid, False)
    simulated.close(SHOP, iid)
    with pytest.raises(gitlab.GitlabMRClosedError) as closed:
        mr.merge()
    assert closed.value.response_code == 405


def test_a_push_moves_the_branch_head_and_resets_approvals(simulated):
    iid = open_mr(simulated).iid
    shop(simulated, LEAD).mergerequests.get(iid).approve()
    sha = simulated.push(SHOP, "dev", "a" * 40)
    assert shop(simulated).branches.get("dev").commit["id"] == sha == "a" * 40
    assert simulated.merge_request(SHOP, iid).detailed_merge_status == "not_approved"


def test_a_merge_request_is_closed_and_reopened_through_the_api(simulated):
    mr = open_mr(simulated)
    mr.state_event = "close"
    mr.save()
    assert shop(simulated).mergerequests.get(mr.iid).state == "closed"
    mr.state_event = "reopen"
    mr.save()
    assert shop(simulated).mergerequests.get(mr.iid).state == "opened"


# --- faults ---------------------------------------------------------------------------------------------------


def test_it_answers_a_5xx_for_as_many_requests_as_asked(simulated):
    simulated.fail(502, times=1)
    with pytest.raises(gitlab.GitlabGetError) as failed:
        shop(simulated)
    assert failed.value.response_code == 502
    assert shop(simulated).path_with_namespace == SHOP  # healed after one request


def test_a_rate_limit_says_when_to_come_back_and_python_gitlab_waits(simulated):
    simulated.fail(429, times=1)
    assert shop(simulated).path_with_namespace == SHOP  # after one 429 and a wait of Retry-After
    assert simulated.faults == []  # the 429 was answered, then the retry


def test_a_fault_can_hit_only_the_merge(simulated):
    iid = open_mr(simulated).iid
    simulated.fail(503, method="PUT", path_contains="/merge")
    assert shop(simulated).mergerequests.get(iid).iid == iid
    with pytest.raises(gitlab.GitlabMRClosedError) as failed:
        shop(simulated).mergerequests.get(iid).merge()
    assert failed.value.response_code == 503
    simulated.heal()


def test_it_can_be_unreachable_or_too_slow(simulated):
    simulated.unreachable()
    with pytest.raises(requests.ConnectionError):
        shop(simulated)
    simulated.heal()
    simulated.slow(1.0)
    with pytest.raises(requests.Timeout):
        gitlab.Gitlab(simulated.url, private_token=BOT, timeout=0.2).projects.get(SHOP)
    simulated.heal()
    assert shop(simulated).path_with_namespace == SHOP


# --- webhooks -------------------------------------------------------------------------------------------------


def test_it_sends_the_hooks_of_a_merge_request_s_life(simulated, recorder):
    iid = open_mr(simulated).iid
    shop(simulated, LEAD).mergerequests.get(iid).approve()
    moved = simulated.push(SHOP, "dev")
    shop(simulated, LEAD).mergerequests.get(iid).approve()
    shop(simulated).mergerequests.get(iid).merge(sha=moved)
    assert simulated.wait_for_hooks()
    assert hook_events(recorder) == [
        ("Merge Request Hook", "open"),
        ("Merge Request Hook", "approved"),
        ("Push Hook", "refs/heads/dev"),
        ("Merge Request Hook", "update"),
        ("Merge Request Hook", "approved"),
        ("Push Hook", "refs/heads/master"),
        ("Merge Request Hook", "merge"),
    ]
    merged = recorder.calls[-1]["json"]["object_attributes"]
    assert (merged["state"], merged["iid"], merged["last_commit"]["id"]) == ("merged", iid, moved)
    assert recorder.calls[3]["json"]["object_attributes"]["oldrev"] != moved
    assert len({call["headers"]["X-Gitlab-Event-UUID"] for call in recorder.calls}) == 7


def test_a_resent_delivery_keeps_its_idempotency_key(simulated, recorder):
    simulated.push(SHOP, "dev")
    assert simulated.wait_for_hooks()
    again = simulated.redeliver(simulated.deliveries[0])
    assert simulated.wait_for_hooks()
    first, second = recorder.calls
    assert first["headers"]["Idempotency-Key"] == second["headers"]["Idempotency-Key"]
    assert first["json"] == second["json"] and again.status == 200


def test_a_hook_to_a_portal_that_is_down_is_recorded_as_failed(simulated):
    simulated.add_hook(SHOP, url="http://127.0.0.1:9/hooks/", token="t")
    simulated.push(SHOP, "dev")
    assert simulated.wait_for_hooks()
    assert simulated.deliveries[0].status is None and simulated.deliveries[0].error == "ConnectionError"


# --- the demo's simulated GitLab (manage.py simulated_gitlab) ---------------------------------------------------


@pytest.mark.django_db
def test_the_demo_serves_the_portal_s_projects_at_the_commits_of_their_latest_runs(tmp_path):
    from deliveries.management.commands.simulated_gitlab import simulated_gitlab, webhook_secrets
    from tests.factories import ProjectFactory, RunFactory

    shop = ProjectFactory(slug="shop", gitlab_project_path="delivery/shop")
    RunFactory(project=shop, branch="dev", commit_sha="1" * 40)
    tested = RunFactory(project=shop, branch="dev", commit_sha="2" * 40)
    secrets = webhook_secrets([shop], tmp_path / "secrets.json")
    with simulated_gitlab([shop], token=BOT, portal_url="http://127.0.0.1:8000/", secrets=secrets) as demo:
        project = api(demo).projects.get("delivery/shop")
        assert project.branches.get("dev").commit["id"] == tested.commit_sha  # promoting it merges what was tested
        assert project.branches.get("master").commit["id"]  # no run on master yet: a made-up first commit
        mr = project.mergerequests.create({"source_branch": "dev", "target_branch": "master", "title": "t"})
        assert mr.approve(sha=tested.commit_sha)["approved"]  # the portal's one user opens and approves
        [hook] = demo.project("delivery/shop").hooks
        assert hook.url == "http://127.0.0.1:8000/api/v1/hooks/gitlab/"
        shop.refresh_from_db()
        assert shop.gitlab_webhook_secret_matches(hook.token)


@pytest.mark.django_db
def test_the_demo_keeps_the_merge_requests_of_the_portal_s_promotions_and_numbers_new_ones_after(tmp_path):
    from datetime import UTC, datetime

    from deliveries.management.commands.simulated_gitlab import simulated_gitlab, webhook_secrets
    from deliveries.models import Promotion, PromotionState
    from tests.factories import ProjectFactory, RunFactory, UserFactory

    shop = ProjectFactory(slug="shop", gitlab_project_path="delivery/shop")
    dana = UserFactory()
    merged_run, rejected_run, reused_run = (RunFactory(project=shop, branch="dev", commit_sha=c * 40) for c in "123")
    at = datetime(2026, 10, 1, 12, tzinfo=UTC)
    Promotion.objects.create(project=shop, source_run=merged_run, requested_by=dana, state=PromotionState.RELEASED,
                             mr_iid=1, merge_commit_sha="9" * 40, merged_at=at, created_at=at)
    Promotion.objects.create(project=shop, source_run=rejected_run, requested_by=dana, state=PromotionState.REJECTED,
                             mr_iid=2, created_at=at)
    Promotion.objects.create(project=shop, source_run=reused_run, requested_by=dana, state=PromotionState.REJECTED,
                             mr_iid=2, created_at=at)  # the same open MR, reused by the next request
    secrets = webhook_secrets([shop], tmp_path / "secrets.json")
    with simulated_gitlab([shop], token=BOT, portal_url="http://127.0.0.1:9/", secrets=secrets) as demo:
        project = api(demo).projects.get("delivery/shop")
        kept = {mr.iid: mr for mr in project.mergerequests.list(state="all", get_all=True)}
        assert {iid: (mr.state, mr.sha) for iid, mr in kept.items()} == {
            1: ("merged", merged_run.commit_sha), 2: ("opened", reused_run.commit_sha)}
        assert kept[1].merge_commit_sha == "9" * 40 and kept[1].title.startswith("Promote ")
        with pytest.raises(gitlab.GitlabCreateError):  # GitLab keeps one open MR per pair of branches
            project.mergerequests.create({"source_branch": "dev", "target_branch": "master", "title": "t"})
        project.mergerequests.get(2).manager.update(2, {"state_event": "close"})
        assert project.mergerequests.create({"source_branch": "dev", "target_branch": "master",
                                             "title": "t"}).iid == 3


@pytest.mark.django_db(transaction=True)  # the imitation reads the runs from its own threads
def test_the_demo_s_dev_branch_follows_the_runs_built_after_its_start(tmp_path):
    from deliveries.management.commands.simulated_gitlab import simulated_gitlab, webhook_secrets
    from tests.factories import ProjectFactory, RunFactory

    shop = ProjectFactory(slug="shop", gitlab_project_path="delivery/shop")
    older = RunFactory(project=shop, branch="dev", commit_sha="1" * 40)
    secrets = webhook_secrets([shop], tmp_path / "secrets.json")
    with simulated_gitlab([shop], token=BOT, portal_url="http://127.0.0.1:9/", secrets=secrets) as demo:
        project = api(demo).projects.get("delivery/shop")
        mr = project.mergerequests.create({"source_branch": "dev", "target_branch": "master", "title": "t"})
        assert mr.sha == older.commit_sha
        pressed_later = RunFactory(project=shop, branch="dev", commit_sha="2" * 40)  # Run pipeline, after the start
        RunFactory(project=shop, branch="feature/x", commit_sha="3" * 40)  # another branch moves nothing
        assert project.branches.get("dev").commit["id"] == pressed_later.commit_sha
        mr = project.mergerequests.get(mr.iid)
        assert mr.sha == pressed_later.commit_sha
        with pytest.raises(gitlab.GitlabMRApprovalError):  # the older run's approval is for a sha dev has left
            mr.approve(sha=older.commit_sha)
        mr.approve(sha=pressed_later.commit_sha)
        mr.merge(sha=pressed_later.commit_sha)
        assert project.mergerequests.get(mr.iid).state == "merged"
        assert demo.wait_for_hooks()
        # the build of the followed commit happened: no Push Hook for it (it would start the build again)
        assert [d.event for d in demo.deliveries if d.payload.get("ref") == "refs/heads/dev"] == []


@pytest.mark.django_db
def test_the_demo_keeps_one_webhook_secret_per_project_in_a_private_file(tmp_path):
    import stat

    from deliveries.management.commands.simulated_gitlab import webhook_secrets
    from deliveries.models import AuditEvent
    from tests.factories import ProjectFactory

    shop, blog = ProjectFactory(slug="shop"), ProjectFactory(slug="blog")
    path = tmp_path / "simulated_gitlab_secrets.json"
    secrets = webhook_secrets([shop, blog], path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert webhook_secrets([shop, blog], path) == secrets  # reused on a restart
    shop.issue_gitlab_webhook_secret()  # an administrator issued a new one meanwhile
    renewed = webhook_secrets([shop, blog], path)
    assert renewed["shop"] != secrets["shop"] and renewed["blog"] == secrets["blog"]
    assert AuditEvent.objects.filter(action="gitlab_webhook_secret.issued", actor_label="simulated GitLab").count() == 3


@pytest.mark.django_db
def test_the_demo_command_needs_a_token_and_projects(settings):
    from django.core.management import CommandError, call_command

    settings.GITLAB_TOKEN = ""
    with pytest.raises(CommandError, match="Set GITLAB_TOKEN"):
        call_command("simulated_gitlab", "--port", "0")
    settings.GITLAB_TOKEN = BOT
    with pytest.raises(CommandError, match="seed_demo"):
        call_command("simulated_gitlab", "--port", "0")
