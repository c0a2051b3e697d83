"""The portal's GitLab client (deliveries.gitlab) against the imitation GitLab over real HTTP: what it asks,
and every refusal turned into its typed exception with a reason in words, never with the token."""

import logging
from unittest import mock

import pytest

from deliveries import gitlab as client
from deliveries.gitlab import (
    ApprovalRefused,
    GitLabNotConfigured,
    GitLabRefused,
    GitLabUnavailable,
    NotMergeable,
    ShaMismatch,
)
from simulators.gitlab import SimulatedGitLab

TOKEN = "glpat-portal-secret-0123456789"
SHOP = "delivery/shop"


@pytest.fixture
def simulated(settings):
    with SimulatedGitLab(tokens={TOKEN: "portal-bot", "glpat-lead": "tom.lead"}) as simulated:
        simulated.add_project(SHOP, branches={"dev": None, "master": None})
        settings.GITLAB_URL = simulated.url
        settings.GITLAB_TOKEN = TOKEN
        yield simulated


def open_mr(**overrides):
    fields = {"project_path": SHOP, "source_branch": "dev", "target_branch": "master",
              "title": "Promote run #12", "description": "Gate passed."}
    return client.open_merge_request(**{**fields, **overrides})


def opened_by_dana(simulated):
    """An MR opened in GitLab by someone else than the portal's user, who may then approve it."""
    return simulated.open_merge_request(SHOP, source_branch="dev", target_branch="master", author="dana.dev")


# --- merge requests -------------------------------------------------------------------------------------------


def test_it_opens_a_merge_request(simulated):
    mr = open_mr()
    assert (mr.iid, mr.state, mr.reused, mr.author_username) == (1, "opened", False, "portal-bot")
    assert mr.sha == simulated.project(SHOP).branches["dev"]
    assert mr.web_url == f"{simulated.url}/{SHOP}/-/merge_requests/1"
    assert simulated.merge_request(SHOP, 1).description == "Gate passed."


def test_it_reuses_the_open_merge_request_for_those_branches(simulated):
    existing = opened_by_dana(simulated)
    mr = open_mr()
    assert (mr.iid, mr.reused) == (existing.iid, True)
    assert len(simulated.project(SHOP).merge_requests) == 1
    simulated.close(SHOP, existing.iid)
    assert (open_mr().iid, open_mr().reused) == (2, True)  # a closed one is not reused: a new one is opened once


def test_an_mr_opened_meanwhile_by_someone_else_is_reused_not_an_error(simulated):
    real_find = client.find_open_merge_request

    def find_then_lose_the_race(project, **branches):
        if not find_then_lose_the_race.called:
            find_then_lose_the_race.called = True
            opened_by_dana(simulated)  # GitLab answers the create with 409 now
            return None
        return real_find(project, **branches)

    find_then_lose_the_race.called = False
    with mock.patch.object(client, "find_open_merge_request", find_then_lose_the_race):
        mr = open_mr()
    assert (mr.iid, mr.reused, mr.author_username) == (1, True, "dana.dev")


def test_a_missing_branch_is_refused_with_gitlab_s_words(simulated):
    with pytest.raises(GitLabRefused) as refused:
        open_mr(source_branch="hotfix")
    assert refused.value.status == 409
    assert 'Source branch "hotfix" does not exist' in refused.value.reason


def test_it_reads_a_merge_request_and_a_branch_head(simulated):
    opened_by_dana(simulated)
    simulated.close(SHOP, 1)
    mr = client.merge_request(project_path=SHOP, iid=1)
    assert (mr.state, mr.detailed_merge_status, mr.source_branch) == ("closed", "not_open", "dev")
    moved = simulated.push(SHOP, "dev")
    assert client.branch_head(project_path=SHOP, branch="dev") == moved


def test_an_unknown_project_or_merge_request_is_refused_as_404(simulated):
    with pytest.raises(GitLabRefused) as project:
        open_mr(project_path="delivery/nope")
    assert (project.value.status, project.value.reason) == (404, "GitLab has no project delivery/nope (404).")
    with pytest.raises(GitLabRefused) as mr:
        client.merge_request(project_path=SHOP, iid=7)
    assert mr.value.reason == "GitLab has no merge request !7 in delivery/shop (404)."


# --- approval -------------------------------------------------------------------------------------------------


def test_it_approves_for_the_tested_sha_and_approving_again_is_fine(simulated):
    mr = opened_by_dana(simulated)
    client.approve_merge_request(project_path=SHOP, iid=mr.iid, sha=mr.sha)
    assert [user.username for user in mr.approved_by] == ["portal-bot"]
    client.approve_merge_request(project_path=SHOP, iid=mr.iid, sha=mr.sha)  # a retry after a lost answer
    assert [user.username for user in mr.approved_by] == ["portal-bot"]


def test_gitlab_refusing_the_author_s_own_approval_is_approval_refused(simulated):
    mr = open_mr()  # opened by the portal's user, on a project that forbids approval by the author
    with pytest.raises(ApprovalRefused) as refused:
        client.approve_merge_request(project_path=SHOP, iid=mr.iid, sha=mr.sha)
    assert refused.value.status == 401 and not refused.value.retryable
    assert "may not approve" in refused.value.reason
    assert simulated.merge_request(SHOP, mr.iid).approved_by == []


def test_approving_a_sha_that_is_no_longer_the_head_is_a_sha_mismatch(simulated):
    mr = opened_by_dana(simulated)
    tested = mr.sha
    simulated.push(SHOP, "dev")
    with pytest.raises(ShaMismatch) as moved:
        client.approve_merge_request(project_path=SHOP, iid=mr.iid, sha=tested)
    assert moved.value.reason == "dev has moved since the tested run; a new run is needed."


# --- merge ----------------------------------------------------------------------------------------------------


def approved(simulated):
    mr = opened_by_dana(simulated)
    client.approve_merge_request(project_path=SHOP, iid=mr.iid, sha=mr.sha)
    return mr


def test_it_merges_the_tested_sha(simulated):
    mr = approved(simulated)
    merged = client.merge_merge_request(project_path=SHOP, iid=mr.iid, sha=mr.sha, message="Promote run #12")
    assert (merged.state, merged.sha) == ("merged", mr.sha)
    assert merged.merge_commit_sha == simulated.project(SHOP).branches["master"]
    assert simulated.project(SHOP).commits[merged.merge_commit_sha].message == "Promote run #12"
    assert any(method == "PUT" and f"sha={mr.sha}" in path for method, path in simulated.requests_seen)
    again = client.merge_merge_request(project_path=SHOP, iid=mr.iid, sha=mr.sha, message="Promote run #12")
    assert again.merge_commit_sha == merged.merge_commit_sha  # a retry after a lost answer is not a failure


def test_a_merge_after_dev_moved_is_a_sha_mismatch_and_merges_nothing(simulated):
    mr = approved(simulated)
    tested, master = mr.sha, simulated.project(SHOP).branches["master"]
    simulated.push(SHOP, "dev", message="Pushed after the tested run")
    simulated.project(SHOP).approvals_required = 0
    with pytest.raises(ShaMismatch) as moved:
        client.merge_merge_request(project_path=SHOP, iid=mr.iid, sha=tested, message="m")
    assert (moved.value.status, moved.value.reason) == (409, "dev has moved since the tested run; a new run is needed.")
    assert not moved.value.retryable
    assert simulated.project(SHOP).branches["master"] == master
    assert simulated.merge_request(SHOP, mr.iid).state == "opened"


@pytest.mark.parametrize("how, expected", [
    ("conflict", "its merge status is conflict"),
    ("closed", "it is closed"),
    ("not approved", "its merge status is not_approved"),
])
def test_a_merge_request_gitlab_will_not_merge_is_not_mergeable_with_its_reason(simulated, how, expected):
    mr = opened_by_dana(simulated) if how == "not approved" else approved(simulated)
    if how == "conflict":
        simulated.set_conflict(SHOP, mr.iid)
    elif how == "closed":
        simulated.close(SHOP, mr.iid)
    with pytest.raises(NotMergeable) as refused:
        client.merge_merge_request(project_path=SHOP, iid=mr.iid, sha=mr.sha, message="m")
    assert refused.value.status == 405
    assert refused.value.reason == f"GitLab cannot merge !{mr.iid} (405, 405 Method Not Allowed): {expected}."


def test_branch_cannot_be_merged_422_is_not_mergeable_with_gitlab_s_message(simulated):
    mr = approved(simulated)
    simulated.fail(422, message="Branch cannot be merged", method="PUT", path_contains="/merge")
    with pytest.raises(NotMergeable) as refused:
        client.merge_merge_request(project_path=SHOP, iid=mr.iid, sha=mr.sha, message="m")
    assert refused.value.status == 422 and "Branch cannot be merged" in refused.value.reason


# --- GitLab down, or not configured ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_5xx_during_the_merge_is_gitlab_unavailable_and_retryable(simulated, status):
    mr = approved(simulated)
    simulated.fail(status, method="PUT", path_contains="/merge")
    with pytest.raises(GitLabUnavailable) as down:
        client.merge_merge_request(project_path=SHOP, iid=mr.iid, sha=mr.sha, message="m")
    assert down.value.retryable and down.value.status == status
    assert down.value.reason == f"GitLab failed with an internal error ({status}) when asked to merge merge request !1."
    simulated.heal()
    assert client.merge_merge_request(project_path=SHOP, iid=mr.iid, sha=mr.sha, message="m").state == "merged"


def test_a_gitlab_that_keeps_limiting_the_portal_is_gitlab_unavailable(simulated, monkeypatch):
    monkeypatch.setattr("gitlab.utils.time.sleep", lambda seconds: None)  # python-gitlab waits on each 429
    simulated.fail(429)
    with pytest.raises(GitLabUnavailable) as limited:
        client.merge_request(project_path=SHOP, iid=1)
    assert limited.value.retryable and limited.value.status == 429


def test_an_unreachable_gitlab_is_gitlab_unavailable(simulated):
    simulated.unreachable()
    with pytest.raises(GitLabUnavailable) as down:
        open_mr()
    assert down.value.retryable
    assert down.value.reason.startswith(f"GitLab at {simulated.url} is unreachable")


def test_a_gitlab_that_does_not_answer_in_time_is_gitlab_unavailable(simulated, monkeypatch):
    monkeypatch.setattr(client, "TIMEOUT_SECONDS", 0.2)
    simulated.slow(1.0)
    with pytest.raises(GitLabUnavailable) as slow:
        client.merge_request(project_path=SHOP, iid=1)
    assert slow.value.retryable


def test_a_gitlab_that_is_not_there_at_all_is_gitlab_unavailable(settings):
    settings.GITLAB_URL, settings.GITLAB_TOKEN = "http://127.0.0.1:9", TOKEN
    with pytest.raises(GitLabUnavailable):
        client.merge_request(project_path=SHOP, iid=1)


@pytest.mark.parametrize("url, token, missing", [
    ("", TOKEN, "GITLAB_URL"),
    ("http://gitlab.example.com", "", "GITLAB_TOKEN"),
])
def test_without_url_or_token_it_is_not_configured_and_asks_nothing(settings, url, token, missing):
    settings.GITLAB_URL, settings.GITLAB_TOKEN = url, token
    assert not client.is_configured()
    with pytest.raises(GitLabNotConfigured) as unset:
        open_mr()
    assert unset.value.reason == f"GitLab is not configured ({missing} is empty)."


def test_a_token_gitlab_refuses_is_not_configured(simulated, settings):
    settings.GITLAB_TOKEN = "glpat-revoked"
    with pytest.raises(GitLabNotConfigured) as refused:
        client.approve_merge_request(project_path=SHOP, iid=1, sha="a" * 40)
    assert refused.value.reason == "GitLab refused the portal's token (401): check GITLAB_TOKEN."


def test_the_token_is_never_logged_nor_in_a_reason(simulated, caplog, settings):
    caplog.set_level(logging.DEBUG)
    reasons = []
    mr = open_mr()
    calls = [
        lambda: client.approve_merge_request(project_path=SHOP, iid=mr.iid, sha=mr.sha),
        lambda: client.merge_merge_request(project_path=SHOP, iid=mr.iid, sha="b" * 40, message="m"),
        lambda: client.merge_request(project_path=SHOP, iid=99),
    ]
    for fault in (None, lambda: simulated.fail(503), lambda: simulated.unreachable()):
        simulated.heal()
        if fault:
            fault()
        for call in calls:
            with pytest.raises(client.GitLabError) as failed:
                call()
            reasons.append(f"{failed.value} {failed.value.reason} {failed.value.__cause__!r}")
    settings.GITLAB_URL = f"http://bot:{TOKEN}@127.0.0.1:9"  # even a token written into the URL
    with pytest.raises(GitLabUnavailable) as down:
        client.merge_request(project_path=SHOP, iid=1)
    reasons.append(down.value.reason)
    assert len(reasons) == 10
    assert all(TOKEN not in reason for reason in reasons)
    assert TOKEN not in caplog.text
