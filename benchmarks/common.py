"""What the benchmarks share: a throwaway database, and the BENCH line."""

import os
import sys
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def setup_django() -> None:
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.test_settings")
    import django

    django.setup()


@contextmanager
def throwaway_database():
    """A fresh, migrated test database (test_<name>), dropped afterwards."""
    from django.test.utils import setup_databases, teardown_databases

    config = setup_databases(verbosity=0, interactive=False)
    try:
        yield
    finally:
        teardown_databases(config, verbosity=0)


def bench_line(name: str, value: float, target: float, ok: bool) -> str:
    return f"BENCH {name} value={value:.3f} target={target:g} ok={str(ok).lower()}"
