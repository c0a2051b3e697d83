"""A real qcluster worker runs a queued task against the test database."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

REPO_ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """The URL of the test database this process uses, for the worker processes."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_a_queued_task_and_stores_its_result():
    from django_q.models import Success

    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "SECRET_KEY": "worker-test-secret-key-0123456789abcdefghij",
        "DATABASE_URL": database_url(),
        "Q_SYNC": "false",
        "Q_WORKERS": "1",
    }
    environment.pop("REDIS_URL", None)
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"], cwd=REPO_ROOT, env=environment,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        checked = subprocess.run(
            [sys.executable, "manage.py", "check_worker", "--timeout", "60"],
            cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=90,
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert checked.returncode == 0, checked.stderr
    assert "Worker ran the diagnostic task" in checked.stdout
    task = Success.objects.get(name="diagnostic ping")
    assert task.result["note"] == "check_worker"
