"""The portal's Jenkins client: python-jenkins, with errors turned into reasons a user understands.

Every call goes through `translated()`, so callers see one exception type, `JenkinsError`, with a
`reason` fit for the run page and a `retryable` flag (an unreachable Jenkins may come back; one
that refuses the credentials or has no such job will not). The API token is never logged.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jenkins
import requests
from django.conf import settings

from portal.env import redact_url

TIMEOUT_SECONDS = 10
STATUS_IN_MESSAGE = re.compile(r"failed \[(\d{3})\]")  # "Possibly authentication failed [401]: ..."


class JenkinsError(Exception):
    def __init__(self, reason: str, *, retryable: bool = False, status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.status = status  # the HTTP status Jenkins answered, when it answered


@dataclass(frozen=True)
class QueueState:
    """Where a queue item stands: waiting, left with a build, or cancelled."""

    waiting: bool
    cancelled: bool = False
    build_number: int | None = None
    build_url: str = ""
    why: str = ""


@dataclass(frozen=True)
class BuildState:
    """What Jenkins says of a build: still building, or its result (SUCCESS, FAILURE, UNSTABLE, ABORTED...)."""

    building: bool
    result: str | None = None  # null while building, as Jenkins
    started_at: datetime | None = None
    finished_at: datetime | None = None


def is_configured() -> bool:
    return bool(settings.JENKINS_URL)


def display_url() -> str:
    return redact_url(settings.JENKINS_URL)


def client() -> jenkins.Jenkins:
    if not is_configured():
        raise JenkinsError("Jenkins is not configured (JENKINS_URL is empty).")
    user = settings.JENKINS_USER or None
    token = settings.JENKINS_TOKEN or None
    return jenkins.Jenkins(settings.JENKINS_URL, username=user, password=token, timeout=TIMEOUT_SECONDS)


@contextmanager
def translated(*, job_path: str = "", what: str = "", missing: str = ""):
    """Turn python-jenkins and requests errors into a JenkinsError with a reason.

    `what` is the action ("queue the build"), `missing` what a 404 means ("job a/b", "build #3 of a/b").
    """
    missing = missing or (f"job {job_path}" if job_path else "such item")
    where = display_url()
    try:
        yield
    except JenkinsError:
        raise
    except (requests.ConnectionError, requests.Timeout, jenkins.TimeoutException) as exc:
        raise JenkinsError(f"Jenkins at {where} is unreachable.", retryable=True) from exc
    except jenkins.NotFoundException as exc:
        raise JenkinsError(f"Jenkins has no {missing} (404).", status=404) from exc
    except jenkins.JenkinsException as exc:
        raise classify(str(exc), what=what, missing=missing) from exc
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        reason = f"Jenkins answered {status} when asked to {what or 'answer'}."
        raise JenkinsError(reason, retryable=status >= 500, status=status) from exc
    except (requests.RequestException, ValueError) as exc:
        raise JenkinsError(f"Jenkins at {where} gave an answer the portal cannot use.", retryable=True) from exc


def classify(message: str, *, what: str, missing: str) -> JenkinsError:
    """python-jenkins says 401/403/500 only inside its messages ("... authentication failed [401]: ...")."""
    match = STATUS_IN_MESSAGE.search(message)
    status = int(match.group(1)) if match else 0
    if status in (401, 403):
        return JenkinsError(f"Jenkins refused the credentials ({status}).", status=status)
    if status >= 500:
        return JenkinsError(f"Jenkins failed with an internal error ({status}).", retryable=True, status=status)
    if "does not exist" in message:  # how python-jenkins reports a 404 on a job, build or queue item
        return JenkinsError(f"Jenkins has no {missing} (404).", status=404)
    return JenkinsError(f"Jenkins could not {what or 'answer'}: {message.splitlines()[0][:200]}")


def trigger(job_path: str, *, branch: str, commit: str, run_id: int) -> int:
    """Queue a build with the portal's parameters; returns the queue item number."""
    parameters = {
        "BRANCH": branch,
        "COMMIT": commit,
        "PORTAL_RUN_ID": str(run_id),
        "PORTAL_URL": settings.SITE_URL,
    }
    with translated(job_path=job_path, what="queue the build"):
        try:
            return client().build_job(job_path, parameters)
        except jenkins.EmptyResponseException as exc:
            raise JenkinsError("Jenkins did not say where it queued the build (no Location header).") from exc


def queue_state(queue_id: int) -> QueueState:
    with translated(what=f"read queue item {queue_id}", missing=f"queue item {queue_id}"):
        item = client().get_queue_item(queue_id)
    return parse_queue_item(item)


def parse_queue_item(item: dict) -> QueueState:
    if item.get("cancelled"):
        return QueueState(waiting=False, cancelled=True)
    executable = item.get("executable")
    if executable and executable.get("number") is not None:
        return QueueState(waiting=False, build_number=int(executable["number"]), build_url=executable.get("url") or "")
    return QueueState(waiting=True, why=item.get("why") or "")


def build_info(job_path: str, number: int) -> dict:
    with translated(what=f"read build #{number}", missing=f"build #{number} of {job_path}"):
        return client().get_build_info(job_path, number)


def parse_build_info(info: dict) -> BuildState:
    result = info.get("result")
    timestamp, duration = info.get("timestamp"), info.get("duration")
    started = None
    if isinstance(timestamp, int) and not isinstance(timestamp, bool) and timestamp > 0:
        started = datetime.fromtimestamp(timestamp / 1000, tz=UTC)
    finished = None
    if started and isinstance(duration, int) and not isinstance(duration, bool) and duration > 0 and result:
        finished = started + timedelta(milliseconds=duration)
    return BuildState(
        building=bool(info.get("building")),
        result=result if isinstance(result, str) else None,
        started_at=started,
        finished_at=finished,
    )


def console_output(job_path: str, number: int) -> str:
    with translated(what=f"read the console of build #{number}", missing=f"build #{number} of {job_path}"):
        return client().get_build_console_output(job_path, number)


def stop(job_path: str, number: int) -> None:
    with translated(what=f"stop build #{number}", missing=f"build #{number} of {job_path}"):
        client().stop_build(job_path, number)


def cancel(queue_id: int) -> None:
    # python-jenkins ignores the 404 Jenkins gives for an item that already left the queue.
    with translated(what=f"cancel queue item {queue_id}", missing=f"queue item {queue_id}"):
        client().cancel_queue(queue_id)
