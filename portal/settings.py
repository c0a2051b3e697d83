"""Settings of the delivery portal. Every value comes from the environment (see .env.example)."""

import os
from datetime import timedelta
from pathlib import Path

from portal import env
from portal.private_files import private_directory, private_file

BASE_DIR = Path(__file__).resolve().parent.parent
# The SQLite file and uploaded reports live here: readable by the portal's account only.
VAR_DIR = private_directory(Path(os.environ.get("PORTAL_VAR_DIR", BASE_DIR / "var")))
E = os.environ

DEBUG = env.read_bool(E, "DEBUG", default=False)
SECRET_KEY = env.read_secret_key(E, debug=DEBUG)
ALLOWED_HOSTS = env.read_list(E, "ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.read_list(E, "CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env.read_url(E, "SITE_URL", schemes={"http", "https"}) or "http://127.0.0.1:8000"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_q",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "portal",
    "deliveries",
    "environments",
    "scanners",
    "promotions",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files with DEBUG=false and no proxy in front (gunicorn alone), compressed and cached for good.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "portal.compression.HtmlGZipMiddleware",  # pages gzipped (BREACH: see the module)
    "portal.content_security.CachedPolicyCSPMiddleware",  # django-csp's, the site-wide header built once
    "portal.middleware.refuse_nul_in_query_string",  # 400 rather than a 500 from PostgreSQL
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    # Django's three below, passed by for the token API (/api/v1/projects/, /api/v1/hooks/): portal.middleware
    "portal.middleware.AuthenticationMiddleware",
    "portal.middleware.LoginRequiredMiddleware",
    "portal.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: turns a refused login into the lockout page
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "portal" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.roles",
                "portal.context_processors.jenkins",
            ],
        },
    },
]

DATABASES = {"default": env.read_database(E, default_sqlite_path=VAR_DIR / "portal.sqlite3")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" and DATABASES["default"]["NAME"] != ":memory:":
    private_file(Path(DATABASES["default"]["NAME"]))  # made 0600 before SQLite makes it with the umask's mode
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out login before any password is hashed, the right one included.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"

# Login throttling (django-axes, failures kept in the database so every process sees them): after
# LOGIN_FAILURE_LIMIT failed logins, the portal's and the admin's, a username is locked for LOGIN_COOLOFF_MINUTES
# from the address that failed (by default: so an attacker cannot lock its owner out from everywhere); a success
# before that resets the count.
AXES_FAILURE_LIMIT = env.read_int(E, "LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env.read_int(E, "LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = env.read_lockout_parameters(E, "LOGIN_LOCKOUT_BY", "username+ip_address")
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.read_time_zone(E, "TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# One date format on every page, with the time zone: portal/formats/en/formats.py.
FORMAT_MODULE_PATH = ["portal.formats"]

STATIC_URL = "static/"
# `manage.py collectstatic` writes here; whitenoise serves it. Under var/ (0700) unless set: a proxy that serves
# the files itself needs a directory it can read.
STATIC_ROOT = Path(E.get("STATIC_ROOT") or private_directory(VAR_DIR / "static"))
MEDIA_ROOT = Path(E.get("MEDIA_ROOT", VAR_DIR / "media"))

# Raw reports live in Django storage: local disk by default, S3 (or moto) when a bucket is named.
AWS_STORAGE_BUCKET_NAME = E.get("AWS_STORAGE_BUCKET_NAME", "")
AWS_S3_ENDPOINT_URL = env.read_url(E, "AWS_S3_ENDPOINT_URL", schemes={"http", "https"}) or None
AWS_REGION = E.get("AWS_REGION", "eu-west-1")
AWS_S3_REGION_NAME = AWS_REGION
# CloudFormation and EC2 (environments/aws.py): another endpoint than AWS's own, such as moto's server. Credentials
# come from boto3's usual chain (environment, shared files, instance profile), never from settings.
AWS_ENDPOINT_URL = env.read_url(E, "AWS_ENDPOINT_URL", schemes={"http", "https"}) or None
AWS_S3_ADDRESSING_STYLE = "path"
AWS_DEFAULT_ACL = None
if AWS_STORAGE_BUCKET_NAME:
    default_storage = {"BACKEND": "storages.backends.s3.S3Storage"}
else:
    default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": default_storage,
    # Hashed names (cached for a year by browsers) and gzipped copies; needs collectstatic before serving
    # with DEBUG=false. With DEBUG=true (make run) names stay plain and files come from the apps directly.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Raw reports and the directories that hold them: the owner's only.
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700

# Uploads above this size are refused before they are parsed. The default fits the README's 1 GiB per worker
# process: the worst measured shape (a Trivy report whose findings sit in one Result) peaks at 948 MB for 192 MiB.
REPORT_MAX_BYTES = env.read_int(E, "REPORT_MAX_BYTES", 192 * 1024 * 1024, minimum=1024)
# How long a process remembers an API token it has verified, its project and name (0: look it up on every
# request). Revocation is read on every request: it applies in every process at once.
API_TOKEN_CACHE_SECONDS = env.read_int(E, "API_TOKEN_CACHE_SECONDS", 10)

# Generous: a Jenkins farm reports every stage of many builds with one project token.
API_RATE_LIMIT = env.read_rate(E, "API_RATE_LIMIT", "6000/min")
API_AUTH_FAILURE_RATE = env.read_rate(E, "API_AUTH_FAILURE_RATE", "20/min")

# The REST API (Jenkins callbacks): project tokens only, JSON in and out, OpenAPI schema at /api/schema/.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["deliveries.api_auth.ProjectTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["portal.parsers.JSONParser", "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # 429 with Retry-After above API_RATE_LIMIT calls per project token (not per address: a Jenkins farm calls
    # from many agents). Counted in Django's cache: see CACHES.
    "DEFAULT_THROTTLE_CLASSES": ["portal.throttles.ProjectTokenRateThrottle"] if API_RATE_LIMIT else [],
    # Refused tokens on the hooks, per client address (portal.throttles.LimitFailedAuthentication).
    "DEFAULT_THROTTLE_RATES": {"project_token": API_RATE_LIMIT, "failed_authentication": API_AUTH_FAILURE_RATE},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Delivery portal API",
    "DESCRIPTION": "Callbacks from Jenkins: runs, stages, artifacts, reports and deployments, with project tokens.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI served from our own static files: the portal works offline, no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # No deep links: Swagger UI puts them inside each operation's button, a link nested in a button that
    # keyboards and screen readers cannot use (WCAG 4.1.2).
    "SWAGGER_UI_SETTINGS": {"deepLinking": False},
}

# Background work: django-q2 on the ORM broker by default, Redis when REDIS_URL is set.
REDIS_URL = env.read_url(E, "REDIS_URL", schemes={"redis", "rediss", "unix"})
# Reports are parsed by a cluster of their own (`Q_CLUSTER_NAME=ingest manage.py qcluster`), so that parsing never
# waits behind other work; the other tasks and every Schedule run in the default cluster (`manage.py qcluster`).
REPORT_INGEST_CLUSTER = "ingest"
# How long one parse may take (the ingest cluster's task timeout); a report waiting or parsing longer is stuck, and
# the reaper queues it again, up to REPORT_PARSE_ATTEMPTS parses in all, then fails it with the reason.
REPORT_PARSE_TIMEOUT_SECONDS = env.read_int(E, "REPORT_PARSE_TIMEOUT_SECONDS", 600, minimum=10)
REPORT_PARSE_ATTEMPTS = env.read_int(E, "REPORT_PARSE_ATTEMPTS", 3, minimum=1)
Q_CLUSTER = {
    "name": "portal",
    "workers": env.read_int(E, "Q_WORKERS", 2, minimum=1),
    "timeout": 600,
    "retry": 720,  # longer than timeout, or a slow task is handed out twice
    "max_attempts": 3,
    "queue_limit": 50,
    "catch_up": False,  # a Schedule missed while no worker ran runs once, not once per missed slot
    "label": "Background tasks",
    "sync": env.read_bool(E, "Q_SYNC", default=False),
    # What differs in the cluster started with Q_CLUSTER_NAME=ingest (django-q2 reads it at start).
    "ALT_CLUSTERS": {
        REPORT_INGEST_CLUSTER: {
            "timeout": REPORT_PARSE_TIMEOUT_SECONDS,
            "retry": REPORT_PARSE_TIMEOUT_SECONDS + 120,
            "label": "Report ingestion",
        },
    },
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
# The API rate limits' counters: shared by every process on Redis; without it, each process counts alone.
CACHES = env.cache_config(redis_url=REDIS_URL)

# Outside systems. Secrets are read here and never logged or rendered.
JENKINS_URL = env.read_url(E, "JENKINS_URL", schemes={"http", "https"})
JENKINS_USER = E.get("JENKINS_USER", "")
JENKINS_TOKEN = E.get("JENKINS_TOKEN", "")
JENKINS_SIMULATED = env.read_bool(E, "JENKINS_SIMULATED", default=False)
# A queued or running run with no news (no start, no stage start or end) for this long is one the reconciler
# asks Jenkins about; a build still going is asked again only after as long again.
RECONCILE_RUNS_AFTER_MINUTES = env.read_int(E, "RECONCILE_RUNS_AFTER_MINUTES", 30, minimum=1)
# Each environment's health URL (per project where it has one per project) is probed this often; a check older
# than twice this reads "unknown" on the board.
AVAILABILITY_CHECK_INTERVAL_MINUTES = env.read_int(E, "AVAILABILITY_CHECK_INTERVAL_MINUTES", 5, minimum=1)
GITLAB_URL = env.read_url(E, "GITLAB_URL", schemes={"http", "https"})
GITLAB_SIMULATED = env.read_bool(E, "GITLAB_SIMULATED", default=False)
GITLAB_TOKEN = E.get("GITLAB_TOKEN", "")
# Email (promotion requests to tech leads, decisions to requesters): SMTP when EMAIL_HOST is set, else printed on
# the console (the demo).
EMAIL_HOST = E.get("EMAIL_HOST", "")
EMAIL_PORT = env.read_int(E, "EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = E.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = E.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env.read_bool(E, "EMAIL_USE_TLS", default=True)
EMAIL_TIMEOUT = 10
EMAIL_BACKEND = ("django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST
                 else "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = E.get("DEFAULT_FROM_EMAIL", "delivery-portal@localhost")

# HTTPS: on by default when SITE_URL is https (and not DEBUG). Behind a proxy that ends TLS, the proxy must tell
# the portal the request was https: gunicorn trusts X-Forwarded-Proto from FORWARDED_ALLOW_IPS (127.0.0.1 by
# default); for a proxy elsewhere, set SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto (the proxy must overwrite it).
HTTPS = not DEBUG and SITE_URL.startswith("https")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.read_bool(E, "SECURE_COOKIES", default=HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env.read_bool(E, "SECURE_SSL_REDIRECT", default=HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
SECURE_PROXY_SSL_HEADER = env.read_proxy_ssl_header(E, "SECURE_PROXY_SSL_HEADER")
SECURE_HSTS_SECONDS = env.read_int(E, "SECURE_HSTS_SECONDS", 365 * 24 * 3600 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.read_bool(E, "SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.read_bool(E, "SECURE_HSTS_PRELOAD", default=False)
if not SECURE_HSTS_PRELOAD:
    # Asking browsers to preload the domain binds every name under it to HTTPS for good: the domain owner's
    # decision (SECURE_HSTS_PRELOAD=true), not a default; so `check --deploy` is not asked to warn about it.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# Content-Security-Policy (django-csp): the pages load nothing from elsewhere and run no inline script. Inline
# style *attributes* stay allowed (a stage's place on the run timeline is one); <style> elements do not.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# Every handler redacts API tokens (the Notification hook's ?token= is in runserver's request lines).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_tokens": {"()": "portal.log_redaction.RedactTokens"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "django.server": {"()": "django.utils.log.ServerFormatter", "format": "[{server_time}] {message}",
                          "style": "{"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_tokens"]},
        "django.server": {"class": "logging.StreamHandler", "formatter": "django.server",
                          "filters": ["redact_tokens"]},
    },
    "root": {"handlers": ["console"], "level": env.read_log_level(E, "LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},  # failures and lockouts; not its banner and four lines per sign-in
        # Django's defaults for these two write through handlers of their own, without the filter.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
    },
}
