"""Settings for benchmarks/callbacks.py: the portal's own settings, plus a minimal view to compare with.

Everything else (middleware, database options, persistent connections) is the portal's, read from the
environment as in production; DEBUG stays off unless the environment turns it on. One opt-in experiment, off by
default, measures a database option the portal does not set (see the script's --help):

- BENCH_CONN_HEALTH_CHECKS=0: no `SELECT 1` before the first query of each request on a reused connection.
"""

import os

from portal.settings import *  # noqa: F403
from portal.settings import DATABASES

ROOT_URLCONF = "benchmarks.callbacks_urls"

if os.environ.get("BENCH_CONN_HEALTH_CHECKS") == "0":
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
