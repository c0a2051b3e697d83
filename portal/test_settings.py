"""Settings for the test suite: the real settings with test-only defaults filled in."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789abcdefghijklmnop")
# The suite refuses many tokens from 127.0.0.1 within a minute; tests/portal/test_security.py tests the limit.
os.environ.setdefault("API_AUTH_FAILURE_RATE", "100000/min")
if "PORTAL_VAR_DIR" not in os.environ:
    os.environ["PORTAL_VAR_DIR"] = tempfile.mkdtemp(prefix="portal-test-")
    atexit.register(shutil.rmtree, os.environ["PORTAL_VAR_DIR"], ignore_errors=True)

from portal.settings import *  # noqa: E402,F403
from portal.settings import Q_CLUSTER, STORAGES, VAR_DIR  # noqa: E402

MEDIA_ROOT = VAR_DIR / "media"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
Q_CLUSTER = {**Q_CLUSTER, "sync": True}
# Plain static names: the manifest storage would need a collectstatic before every test session (tests run with
# DEBUG=false, where it refuses names missing from its manifest). tests/portal/test_security_static.py runs
# collectstatic and gunicorn with the real storage.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}

# A file, not memory, so that a real qcluster worker started by a test can share the test database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}  # noqa: F405
