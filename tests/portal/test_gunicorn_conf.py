"""gunicorn's worker count: one more than the CPUs unless WEB_CONCURRENCY says otherwise, refused when invalid."""

import importlib
import os

import pytest
from django.core.exceptions import ImproperlyConfigured

import portal.gunicorn_conf


def workers_with(monkeypatch, value: str | None) -> int:
    if value is None:
        monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    else:
        monkeypatch.setenv("WEB_CONCURRENCY", value)
    try:
        return importlib.reload(portal.gunicorn_conf).workers
    finally:
        monkeypatch.undo()
        importlib.reload(portal.gunicorn_conf)


def test_it_starts_one_more_worker_than_the_cpus(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert workers_with(monkeypatch, None) == 7
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert workers_with(monkeypatch, "") == 7


def test_web_concurrency_sets_the_workers(monkeypatch):
    assert workers_with(monkeypatch, " 4 ") == 4


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_it_refuses_a_worker_count_that_is_not_a_positive_whole_number(monkeypatch, value):
    with pytest.raises(ImproperlyConfigured, match="WEB_CONCURRENCY"):
        workers_with(monkeypatch, value)
