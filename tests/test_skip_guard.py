"""CI cannot hide a skip: a skipped test fails the run unless the allowed-skips list names it."""

import pytest

SUITE = """
import pytest

def test_needs_a_browser():
    pytest.skip("Chromium not found")

def test_runs():
    pass
"""


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def run(suite, monkeypatch, allowed: str | None):
    if allowed is None:
        monkeypatch.delenv("PORTAL_ALLOWED_SKIPS", raising=False)
    else:
        path = suite.path / "allowed-skips"
        path.write_text(allowed)
        monkeypatch.setenv("PORTAL_ALLOWED_SKIPS", str(path))
    return suite.runpytest_inprocess("-p", "no:django", "-p", "tests.skip_guard", "-p", "no:cacheprovider")


def test_it_lets_a_laptop_skip_when_no_list_is_given(suite, monkeypatch):
    result = run(suite, monkeypatch, None)
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, skipped=1)


def test_it_fails_a_run_whose_skip_is_not_listed(suite, monkeypatch):
    result = run(suite, monkeypatch, "# nothing allowed\n")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*skips not allowed by*", "*test_suite.py::test_needs_a_browser: Chromium not found*"])


def test_it_accepts_a_listed_skip_on_the_database_it_names(suite, monkeypatch):
    result = run(suite, monkeypatch, "any  test_suite.py::test_needs_*  no browser on this runner\n")
    assert result.ret == pytest.ExitCode.OK


def test_it_refuses_a_skip_listed_for_the_other_database(suite, monkeypatch):
    from tests.skip_guard import database_vendor

    other = "postgresql" if database_vendor() == "sqlite" else "sqlite"
    result = run(suite, monkeypatch, f"{other}  test_suite.py::test_needs_a_browser  only there\n")
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_it_refuses_a_malformed_list(suite, monkeypatch):
    result = run(suite, monkeypatch, "tests/x.py::test_y without a database or reason\n")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
