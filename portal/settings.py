"""Settings of the delivery portal. Every value comes from the environment (see .env.example)."""

import os
from pathlib import Path

from portal import env

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PORTAL_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # the SQLite file and uploaded reports live here
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
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "portal",
    "deliveries",
    "environments",
    "scanners",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = E.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(E.get("MEDIA_ROOT", VAR_DIR / "media"))

# Raw reports live in Django storage: local disk by default, S3 (or moto) when a bucket is named.
AWS_STORAGE_BUCKET_NAME = E.get("AWS_STORAGE_BUCKET_NAME", "")
AWS_S3_ENDPOINT_URL = env.read_url(E, "AWS_S3_ENDPOINT_URL", schemes={"http", "https"}) or None
AWS_S3_REGION_NAME = E.get("AWS_REGION", "eu-west-1")
AWS_REGION = AWS_S3_REGION_NAME
AWS_S3_ADDRESSING_STYLE = "path"
AWS_DEFAULT_ACL = None
if AWS_STORAGE_BUCKET_NAME:
    default_storage = {"BACKEND": "storages.backends.s3.S3Storage"}
else:
    default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Uploads above this size are refused before they are parsed.
REPORT_MAX_BYTES = env.read_int(E, "REPORT_MAX_BYTES", 512 * 1024 * 1024, minimum=1024)
# How long a process trusts an API token it has verified (0: look it up on every request). Revoking a token
# takes up to this long to reach the other processes.
API_TOKEN_CACHE_SECONDS = env.read_int(E, "API_TOKEN_CACHE_SECONDS", 10)

# The REST API (Jenkins callbacks): project tokens only, JSON in and out, OpenAPI schema at /api/schema/.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["deliveries.api_auth.ProjectTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser", "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
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
    "REDOC_DIST": "SIDECAR",
}

# Background work: django-q2 on the ORM broker by default, Redis when REDIS_URL is set.
REDIS_URL = env.read_url(E, "REDIS_URL", schemes={"redis", "rediss", "unix"})
Q_CLUSTER = {
    "name": "portal",
    "workers": env.read_int(E, "Q_WORKERS", 2, minimum=1),
    "timeout": 600,
    "retry": 720,  # longer than timeout, or a slow task is handed out twice
    "max_attempts": 3,
    "queue_limit": 50,
    "catch_up": False,
    "label": "Background tasks",
    "sync": env.read_bool(E, "Q_SYNC", default=False),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# Outside systems. Secrets are read here and never logged or rendered.
JENKINS_URL = env.read_url(E, "JENKINS_URL", schemes={"http", "https"})
JENKINS_USER = E.get("JENKINS_USER", "")
JENKINS_TOKEN = E.get("JENKINS_TOKEN", "")
JENKINS_SIMULATED = env.read_bool(E, "JENKINS_SIMULATED", default=False)
GITLAB_URL = env.read_url(E, "GITLAB_URL", schemes={"http", "https"})
GITLAB_TOKEN = E.get("GITLAB_TOKEN", "")

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.read_bool(E, "SECURE_COOKIES", default=not DEBUG and SITE_URL.startswith("https"))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": E.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
