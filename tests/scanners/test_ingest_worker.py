"""A real ingestion cluster (`Q_CLUSTER_NAME=ingest manage.py qcluster`), on the ORM broker and on Redis, killed
with SIGKILL in the middle of a parse: the report is not lost, the reaper queues it again and a new cluster parses it.
Other work queued on the default cluster stays there: the ingestion cluster takes only reports."""

import io
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings

from scanners import services
from scanners.models import Finding, Report, ReportStatus
from tests.factories import RunFactory
from tests.portal.test_worker import database_url
from tests.scanners import samples

pytestmark = pytest.mark.django_db(transaction=True)

REPO_ROOT = Path(__file__).resolve().parents[2]
REDIS_DB = 7  # this suite's own Redis database
WAIT_SECONDS = 180  # a loaded machine starts a cluster slowly


def redis_url() -> str:
    import redis

    url = os.environ.get("REDIS_URL") or f"redis://127.0.0.1:6379/{REDIS_DB}"
    try:
        redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {url} (set REDIS_URL) for the Redis broker case")
    return url


@pytest.fixture(params=["orm", "redis"])
def broker_env(request, monkeypatch):
    """The worker's environment for one broker, and this process queueing on the same broker."""
    from django_q.conf import Conf

    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", "DATABASE_URL": database_url(),
                   "SECRET_KEY": settings.SECRET_KEY,  # tasks are signed with it
                   "Q_SYNC": "false", "Q_WORKERS": "1",
                   "Q_CLUSTER_NAME": "ingest"}
    environment.pop("REDIS_URL", None)
    monkeypatch.setattr(Conf, "SYNC", False)
    if request.param == "redis":
        url = redis_url()
        environment["REDIS_URL"] = url
        monkeypatch.setattr(Conf, "ORM", None)
        monkeypatch.setattr(Conf, "REDIS", url)
    environment["PORTAL_VAR_DIR"] = os.environ["PORTAL_VAR_DIR"]  # the same media directory as this process
    yield request.param, environment
    from django_q.brokers import get_broker

    for name in ("ingest", Conf.CLUSTER_NAME):
        get_broker(name).purge_queue()


def start_cluster(environment) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=REPO_ROOT, env=environment,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def stop(cluster: subprocess.Popen, sig=signal.SIGTERM) -> None:
    try:
        os.killpg(cluster.pid, sig)
    except ProcessLookupError:
        return
    try:
        cluster.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(cluster.pid, signal.SIGKILL)
        cluster.wait(timeout=30)


def wait_for(report: Report, status: str) -> Report:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        report.refresh_from_db()
        if report.status == status:
            return report
        time.sleep(0.2)
    raise AssertionError(f"report still {report.status} after {WAIT_SECONDS}s, not {status}: {report.error!r}, "
                         f"{report.parse_attempts} attempts")


def test_a_cluster_killed_mid_parse_loses_no_report(broker_env):
    from django_q.brokers import get_broker
    from django_q.conf import Conf
    from django_q.tasks import async_task

    broker_name, environment = broker_env
    content = samples.trivy_report([samples.trivy_vulnerability("CVE-2024-0001")])
    report, _ = services.receive_report(run=RunFactory(), file=io.BytesIO(content),
                                        original_name="app.json", kind="trivy", queue=False)
    # The worker blocks reading the stored file, a FIFO nobody writes to: it is parsing when it is killed.
    stored = Path(report.file.path)
    stored.unlink()
    os.mkfifo(stored)
    for _ in range(3):  # other work, on the default cluster, that no ingestion waits behind
        async_task("portal.tasks.diagnostic_ping", "queued behind nothing", task_name="other work")

    cluster = start_cluster(environment)
    try:
        services.queue_ingestion(report.pk)
        wait_for(report, ReportStatus.PARSING)
    finally:
        stop(cluster, signal.SIGKILL)
    report.refresh_from_db()
    assert (report.status, report.parse_attempts) == (ReportStatus.PARSING, 1)  # stuck for good, without a reaper
    if broker_name == "redis":
        assert get_broker("ingest").queue_size() == 0  # the task died with the cluster

    stored.unlink()
    stored.write_bytes(content)
    assert services.reap_stuck_reports(older_than=timedelta(0)) == {"queued_again": 1, "failed": 0}
    cluster = start_cluster(environment)
    try:
        report = wait_for(report, ReportStatus.PARSED)
    finally:
        stop(cluster)
    assert report.parse_attempts == 2 and report.error == ""
    assert Finding.objects.filter(report=report).count() == 1
    assert get_broker(Conf.CLUSTER_NAME).queue_size() == 3  # the ingestion cluster took only reports


def test_the_ingestion_cluster_takes_its_name_and_time_limit_from_the_environment():
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", "SECRET_KEY": settings.SECRET_KEY,
                   "Q_CLUSTER_NAME": "ingest", "REPORT_PARSE_TIMEOUT_SECONDS": "900"}
    code = ("import django; django.setup(); from django_q.conf import Conf; "
            "print(Conf.CLUSTER_NAME, Conf.PREFIX, Conf.TIMEOUT, Conf.RETRY, Conf.LABEL)")
    shown = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=environment, capture_output=True,
                           text=True, timeout=60)
    # Its own queue, tasks signed as the rest of the portal's, and a lease longer than its time limit.
    assert shown.stdout.split(maxsplit=4) == ["ingest", "portal", "900", "1020", "Report ingestion\n"]
