"""Fails the session on a skipped test that the allowed-skips list does not name (CI sets the list).

On a laptop a test that needs Chromium, Groovy or a linter skips and says why; in CI the same skip would hide a
missing install step. With `PORTAL_ALLOWED_SKIPS=<file>` every skip must match a line of that file:

    <database: sqlite | postgresql | any>  <node id, shell-style pattern>  <reason>

separated by tabs or runs of two or more spaces; `#` starts a comment. Any other skip fails the run.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ENV = "PORTAL_ALLOWED_SKIPS"
DATABASES = {"sqlite", "postgresql", "any"}


@dataclass(frozen=True)
class AllowedSkip:
    database: str
    pattern: str
    reason: str


def read_allowed(path: Path) -> list[AllowedSkip]:
    allowed = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = re.split(r"\t+| {2,}", line, maxsplit=2)
        if len(parts) != 3 or parts[0] not in DATABASES:
            raise pytest.UsageError(f"{path}:{number}: expected '<sqlite|postgresql|any>  <node id>  <reason>'")
        allowed.append(AllowedSkip(*parts))
    return allowed


def database_vendor() -> str:
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    return "postgresql" if "postgresql" in engine else "sqlite" if "sqlite" in engine else engine


class SkipGuard:
    def __init__(self, allowed: list[AllowedSkip], source: str):
        self.allowed, self.source = allowed, source
        self.unlisted: list[tuple[str, str]] = []

    def is_allowed(self, nodeid: str) -> bool:
        vendor = database_vendor()
        return any(
            rule.database in ("any", vendor) and fnmatch.fnmatchcase(nodeid, rule.pattern) for rule in self.allowed
        )

    def pytest_runtest_logreport(self, report):
        if report.skipped and not hasattr(report, "wasxfail") and not self.is_allowed(report.nodeid):
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            reason = reason.removeprefix("Skipped: ")
            self.unlisted.append((report.nodeid, reason))

    def pytest_sessionfinish(self, session):
        if self.unlisted and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        if not self.unlisted:
            return
        terminalreporter.section(f"skips not allowed by {self.source}", red=True)
        for nodeid, reason in self.unlisted:
            terminalreporter.line(f"{nodeid}: {reason}", red=True)


def pytest_configure(config):
    source = os.environ.get(ENV, "")
    if source:
        config.pluginmanager.register(SkipGuard(read_allowed(Path(source)), source), "portal-skip-guard")
