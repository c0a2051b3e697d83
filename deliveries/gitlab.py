"""The portal's GitLab client: python-gitlab, with GitLab's refusals turned into typed reasons a user understands.

Every call goes through `translated()`, so callers see `GitLabError` subclasses, each with a `reason` fit for
the promotion page and a `retryable` flag:

- GitLabNotConfigured: no GITLAB_URL or GITLAB_TOKEN, or GitLab refuses the token;
- GitLabUnavailable: unreachable, timed out, a 5xx, or still rate-limited (retryable: GitLab may come back);
- ShaMismatch: the source branch moved since the tested run (409 on merge or approve);
- NotMergeable: GitLab will not merge (405 or 422; its message is kept);
- ApprovalRefused: GitLab will not take the approval (401 or 403 on approve);
- GitLabRefused: any other refusal (a missing project or MR, a bad request).

The token is never logged or put in a message. Calls are safe to repeat: an approval already given by the
portal's user, or a merge already done with the tested sha, is success, so a task can retry after a lost answer.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import gitlab
import requests
from django.conf import settings
from gitlab.exceptions import GitlabAuthenticationError, GitlabError, GitlabParsingError

from portal.env import redact_url

TIMEOUT_SECONDS = 10
SHA_MOVED = "dev has moved since the tested run; a new run is needed."


class GitLabError(Exception):
    retryable = False

    def __init__(self, reason: str, *, status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status  # the HTTP status GitLab answered, when it answered


class GitLabNotConfigured(GitLabError):
    pass


class GitLabUnavailable(GitLabError):
    retryable = True


class ShaMismatch(GitLabError):
    pass


class NotMergeable(GitLabError):
    pass


class ApprovalRefused(GitLabError):
    pass


class GitLabRefused(GitLabError):
    pass


@dataclass(frozen=True)
class MergeRequest:
    """What the portal keeps of a GitLab merge request."""

    iid: int
    web_url: str
    state: str  # opened, closed, locked, merged
    title: str
    source_branch: str
    target_branch: str
    sha: str  # the head of the source branch
    merge_commit_sha: str | None
    detailed_merge_status: str
    author_username: str
    reused: bool = False  # open_merge_request found it open rather than creating it

    @classmethod
    def from_api(cls, attributes: dict, *, reused: bool = False) -> MergeRequest:
        return cls(
            iid=int(attributes["iid"]),
            web_url=attributes.get("web_url") or "",
            state=attributes.get("state") or "",
            title=attributes.get("title") or "",
            source_branch=attributes.get("source_branch") or "",
            target_branch=attributes.get("target_branch") or "",
            sha=attributes.get("sha") or "",
            merge_commit_sha=attributes.get("merge_commit_sha"),
            # GitLab before 15.6 has only the deprecated merge_status.
            detailed_merge_status=attributes.get("detailed_merge_status") or attributes.get("merge_status") or "",
            author_username=(attributes.get("author") or {}).get("username") or "",
            reused=reused,
        )


def is_configured() -> bool:
    return bool(settings.GITLAB_URL and settings.GITLAB_TOKEN)


def display_url() -> str:
    return redact_url(settings.GITLAB_URL)


def client() -> gitlab.Gitlab:
    if not settings.GITLAB_URL:
        raise GitLabNotConfigured("GitLab is not configured (GITLAB_URL is empty).")
    if not settings.GITLAB_TOKEN:
        raise GitLabNotConfigured("GitLab is not configured (GITLAB_TOKEN is empty).")
    # keep_base_url: paging links follow the configured URL even when GitLab's external_url differs (a proxy).
    return gitlab.Gitlab(settings.GITLAB_URL, private_token=settings.GITLAB_TOKEN, timeout=TIMEOUT_SECONDS,
                         keep_base_url=True, retry_transient_errors=False)


def gitlab_message(exc: GitlabError) -> str:
    """GitLab's own words: its `message` may be a string, a list, or a dict of lists."""
    message = exc.error_message
    if isinstance(message, list):
        message = "; ".join(str(m) for m in message)
    elif isinstance(message, dict):
        message = "; ".join(f"{k} {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in message.items())
    text = str(message or "").strip()
    if text.startswith("<"):  # an HTML error page from a proxy
        return ""
    return text.splitlines()[0][:300] if text else ""


@contextmanager
def translated(*, what: str, missing: str = "such project or merge request"):
    """Turn python-gitlab and requests errors into a GitLabError; `what` is the action ("merge !3")."""
    try:
        yield
    except GitLabError:
        raise
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise GitLabUnavailable(f"GitLab at {display_url()} is unreachable (could not {what}).") from exc
    except GitlabAuthenticationError as exc:
        raise GitLabNotConfigured(
            f"GitLab refused the portal's token ({exc.response_code}): check GITLAB_TOKEN.", status=exc.response_code
        ) from exc
    except GitlabParsingError as exc:
        raise GitLabUnavailable(f"GitLab at {display_url()} gave an answer the portal cannot read.") from exc
    except GitlabError as exc:
        status = exc.response_code or 0
        said = gitlab_message(exc)
        if status >= 500:
            raise GitLabUnavailable(f"GitLab failed with an internal error ({status}) when asked to {what}.",
                                    status=status) from exc
        if status == 429:  # python-gitlab waited as GitLab asked, several times: try again later
            raise GitLabUnavailable(f"GitLab is limiting the portal's requests (429) when asked to {what}.",
                                    status=status) from exc
        if status == 404:
            raise GitLabRefused(f"GitLab has no {missing} (404).", status=status) from exc
        if status == 403:
            raise GitLabRefused(f"GitLab does not let the portal's user {what} (403).", status=status) from exc
        detail = f": {said}" if said else "."
        raise GitLabRefused(f"GitLab refused to {what} ({status}){detail}", status=status) from exc
    except (requests.RequestException, ValueError) as exc:
        raise GitLabUnavailable(f"GitLab at {display_url()} gave an answer the portal cannot use.") from exc


def project_of(gl: gitlab.Gitlab, project_path: str):
    return gl.projects.get(project_path, lazy=True)  # no request: the path is the id


def find_open_merge_request(project, *, source_branch: str, target_branch: str) -> dict | None:
    found = project.mergerequests.list(state="opened", source_branch=source_branch, target_branch=target_branch,
                                       order_by="created_at", sort="asc", get_all=False, per_page=1)
    return found[0].attributes if found else None


def open_merge_request(*, project_path: str, source_branch: str, target_branch: str, title: str,
                       description: str) -> MergeRequest:
    """The open MR from `source_branch` into `target_branch`: the existing one if there is one, else a new one."""
    what = f"open a merge request from {source_branch} into {target_branch} in {project_path}"
    with translated(what=what, missing=f"project {project_path}"):
        project = project_of(client(), project_path)
        existing = find_open_merge_request(project, source_branch=source_branch, target_branch=target_branch)
        if existing is not None:
            return MergeRequest.from_api(existing, reused=True)
        try:
            created = project.mergerequests.create({
                "source_branch": source_branch, "target_branch": target_branch, "title": title,
                "description": description, "remove_source_branch": False,
            })
        except GitlabError as exc:
            if exc.response_code != 409:
                raise
            # Opened meanwhile (another request won the race), or the branches are refused: GitLab says which.
            existing = find_open_merge_request(project, source_branch=source_branch, target_branch=target_branch)
            if existing is None:
                raise GitLabRefused(f"GitLab refused to {what} (409): {gitlab_message(exc)}", status=409) from exc
            return MergeRequest.from_api(existing, reused=True)
        return MergeRequest.from_api(created.attributes)


def merge_request(*, project_path: str, iid: int) -> MergeRequest:
    with translated(what=f"read merge request !{iid}", missing=f"merge request !{iid} in {project_path}"):
        return MergeRequest.from_api(project_of(client(), project_path).mergerequests.get(iid).attributes)


def branch_head(*, project_path: str, branch: str) -> str:
    """The sha at the head of a branch now."""
    with translated(what=f"read branch {branch}", missing=f"branch {branch} in {project_path}"):
        return project_of(client(), project_path).branches.get(branch).commit["id"]


def approve_merge_request(*, project_path: str, iid: int, sha: str) -> None:
    """Approve the MR in GitLab for exactly `sha`; an approval the portal's user already gave counts."""
    with translated(what=f"approve merge request !{iid}", missing=f"merge request !{iid} in {project_path}"):
        gl = client()
        mr = project_of(gl, project_path).mergerequests.get(iid)  # proves the token before a 401 means "refused"
        try:
            mr.approve(sha=sha)
        except GitlabAuthenticationError as exc:
            if already_approved_by_portal(gl, mr):
                return
            raise ApprovalRefused(
                f"GitLab refused the approval of !{iid} ({exc.response_code}): the portal's GitLab user may not "
                "approve it (GitLab forbids the author's own approval on this project, or the user is not an "
                "eligible approver).",
                status=exc.response_code,
            ) from exc
        except GitlabError as exc:
            if exc.response_code == 409:
                raise ShaMismatch(SHA_MOVED, status=409) from exc
            if exc.response_code == 403:
                raise ApprovalRefused(f"GitLab refused the approval of !{iid} (403): {gitlab_message(exc)}",
                                      status=403) from exc
            raise


def already_approved_by_portal(gl: gitlab.Gitlab, mr) -> bool:
    gl.auth()
    approvals = mr.approvals.get()
    return any((row.get("user") or {}).get("id") == gl.user.id for row in approvals.approved_by or [])


def merge_merge_request(*, project_path: str, iid: int, sha: str, message: str) -> MergeRequest:
    """Merge the MR if its head is still `sha` (GitLab checks it); a merge of that sha already done counts."""
    with translated(what=f"merge merge request !{iid}", missing=f"merge request !{iid} in {project_path}"):
        mr = project_of(client(), project_path).mergerequests.get(iid)
        try:
            # `sha` makes GitLab refuse the merge if the source branch has moved: nothing untested is merged.
            mr.merge(merge_commit_message=message, should_remove_source_branch=False, sha=sha)
        except GitlabAuthenticationError as exc:
            raise NotMergeable(f"GitLab does not let the portal's user merge !{iid} ({exc.response_code}).",
                               status=exc.response_code) from exc
        except GitlabError as exc:
            status = exc.response_code
            if status == 409:
                raise ShaMismatch(SHA_MOVED, status=409) from exc
            if status in (405, 406, 422):
                current = project_of(client(), project_path).mergerequests.get(iid).attributes
                if current.get("state") == "merged" and current.get("sha") == sha:
                    return MergeRequest.from_api(current)  # merged by an earlier attempt whose answer was lost
                raise NotMergeable(not_mergeable_reason(iid, status, gitlab_message(exc), current),
                                   status=status) from exc
            raise
        return MergeRequest.from_api(mr.attributes)


def not_mergeable_reason(iid: int, status: int, said: str, current: dict) -> str:
    state = current.get("state") or "unknown"
    detail = current.get("detailed_merge_status") or current.get("merge_status") or ""
    why = f"it is {state}" if state != "opened" else f"its merge status is {detail or 'unknown'}"
    return f"GitLab cannot merge !{iid} ({status}, {said or 'not mergeable'}): {why}."
