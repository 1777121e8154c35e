"""Django settings for Recsite, all read from the environment (12-factor).

Every variable is optional on a developer machine; see README.md for the list.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")
    SECRET_KEY = "insecure-development-key-only-used-with-DJANGO_DEBUG"

# Earlier secret keys, still accepted for signatures and API key secrets while rotating (comma-separated).
SECRET_KEY_FALLBACKS = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])

ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS",
    default=["localhost", "127.0.0.1", "testserver"] if DEBUG else [],
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "strawberry_django",
    "access",
    "catalog",
    "recommendations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Innermost: a refused or lost database connection answers 503 UNAVAILABLE, not 500.
    "recsite.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "recsite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "recsite.wsgi.application"
ASGI_APPLICATION = "recsite.asgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# Keep connections between requests (a new PostgreSQL connection costs more than a whole putEvents call),
# checked before reuse so a restarted database is survived.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DJANGO_CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while an import or a worker writes; a larger page cache
    # keeps index inserts of big imports in memory.
    DATABASES["default"].setdefault("OPTIONS", {})["init_command"] = (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536;"
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool(
    "RECSITE_DB_PREPARED_STATEMENTS", default=True
):
    # Parameters bound by the server and statements prepared after 5 uses: the hot queries
    # (putEvents' read and insert, histories, catalog rows) are then planned once per connection
    # instead of on every call. Set RECSITE_DB_PREPARED_STATEMENTS=0 behind a transaction-pooling
    # PgBouncer older than 1.21 (docs/deploying.md).
    DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
MEDIA_ROOT = env.path("RECSITE_MEDIA_ROOT", default=BASE_DIR / "var" / "media")
MEDIA_URL = "media/"

# Celery: without a broker, tasks run in-process (eagerly) so nothing else is needed.
# (Celery still opens a producer for eager tasks: the in-memory transport keeps it local.)
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or "memory://localhost/"
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL.startswith("memory://")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A worker killed mid-task (acks_late above, reject_on_worker_lost) loses nothing: the message was never
# acknowledged, so the broker gives it to another worker, and every task is safe to run twice. RabbitMQ
# does that as soon as the dead worker's connection closes; Redis (and SQS) only once the message has
# been unacknowledged for the visibility timeout. That timeout must exceed the longest task plus the
# longest countdown (a worker holds a retry's message unacknowledged until its ETA: up to 300 s here),
# or Redis hands a message still being worked on to a second worker; one hour leaves training room.
# A shorter one recovers faster from a killed worker; the restore sweep runs every interval x throttle s.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT_SECONDS", default=3600),
    "unacked_restore_interval": env.int("CELERY_UNACKED_RESTORE_INTERVAL_SECONDS", default=10),
    "unacked_restore_throttle": env.int("CELERY_UNACKED_RESTORE_THROTTLE", default=10),
}
# The worker keeps reconnecting to a broker that went away (and retries at startup), instead of exiting.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None

# Recommendation backend of new campaigns, filters and event trackers, and Amazon Personalize.
RECSITE_BACKEND = env.str("RECSITE_BACKEND", default="local").strip().lower()
if RECSITE_BACKEND not in ("local", "personalize"):
    raise ImproperlyConfigured(f"RECSITE_BACKEND must be local or personalize, not {RECSITE_BACKEND!r}.")
AWS_REGION = env.str("AWS_REGION", default="")
PERSONALIZE_ROLE_ARN = env.str("PERSONALIZE_ROLE_ARN", default="")
PERSONALIZE_S3_BUCKET = env.str("PERSONALIZE_S3_BUCKET", default="")
PERSONALIZE_KMS_KEY_ARN = env.str("PERSONALIZE_KMS_KEY_ARN", default="")

# GraphQL catalog pagination.
RECSITE_GRAPHQL_DEFAULT_PAGE_SIZE = env.int("RECSITE_GRAPHQL_DEFAULT_PAGE_SIZE", default=25)
RECSITE_GRAPHQL_MAX_PAGE_SIZE = env.int("RECSITE_GRAPHQL_MAX_PAGE_SIZE", default=500)
RECSITE_GRAPHQL_MAX_DEPTH = env.int("RECSITE_GRAPHQL_MAX_DEPTH", default=10)
RECSITE_GRAPHQL_MAX_ALIASES = env.int("RECSITE_GRAPHQL_MAX_ALIASES", default=15)
RECSITE_GRAPHQL_MAX_TOKENS = env.int("RECSITE_GRAPHQL_MAX_TOKENS", default=2000)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
}
if CELERY_TASK_ALWAYS_EAGER:
    # Tasks run inside commands and requests: Celery's per-task INFO lines would repeat what they print.
    LOGGING["loggers"] = {"celery": {"level": "WARNING"}}


# Recommendations: model artifacts, training and serving (see recommendations/artifacts.py, tasks.py).
RECSITE_ARTIFACT_STORAGE = env.str("RECSITE_ARTIFACT_STORAGE", default="default")
RECSITE_ARTIFACT_CACHE = env.path("RECSITE_ARTIFACT_CACHE", default=BASE_DIR / "var" / "model-cache")
RECSITE_TRAINING_STALE_SECONDS = env.int("RECSITE_TRAINING_STALE_SECONDS", default=3600)
RECSITE_HISTORY_LENGTH = env.int("RECSITE_HISTORY_LENGTH", default=500)
RECSITE_CAMPAIGN_CHECK_SECONDS = env.float("RECSITE_CAMPAIGN_CHECK_SECONDS", default=0.0)
# How long a process may serve from its copy of a campaign or filter row (recommendations/row_cache.py).
RECSITE_SERVING_CACHE_SECONDS = env.float("RECSITE_SERVING_CACHE_SECONDS", default=1.0)
# The outbox to Amazon Personalize (recommendations/outbox.py): how long after a commit the flush runs (one
# queued flush serves a process's commits meanwhile), rows per claimed chunk and per task run, retries of
# throttling / outages (exponential from the base, capped), the sender lease without row locks (SQLite),
# and how often beat sweeps groups with unsent rows.
RECSITE_OUTBOX_FLUSH_DELAY_SECONDS = env.float("RECSITE_OUTBOX_FLUSH_DELAY_SECONDS", default=1.0)
RECSITE_OUTBOX_CHUNK_ROWS = env.int("RECSITE_OUTBOX_CHUNK_ROWS", default=100)
RECSITE_OUTBOX_MAX_ROWS_PER_RUN = env.int("RECSITE_OUTBOX_MAX_ROWS_PER_RUN", default=5000)
RECSITE_OUTBOX_MAX_RETRIES = env.int("RECSITE_OUTBOX_MAX_RETRIES", default=8)
RECSITE_OUTBOX_RETRY_BASE_SECONDS = env.float("RECSITE_OUTBOX_RETRY_BASE_SECONDS", default=2.0)
RECSITE_OUTBOX_RETRY_MAX_SECONDS = env.float("RECSITE_OUTBOX_RETRY_MAX_SECONDS", default=300.0)
RECSITE_OUTBOX_LEASE_SECONDS = env.float("RECSITE_OUTBOX_LEASE_SECONDS", default=300.0)
RECSITE_OUTBOX_SWEEP_SECONDS = env.float("RECSITE_OUTBOX_SWEEP_SECONDS", default=60.0)
CELERY_BEAT_SCHEDULE = {
    "recommendations-auto-retrain": {
        "task": "recommendations.tasks.auto_retrain_task",
        "schedule": env.int("RECSITE_AUTO_TRAINING_CHECK_SECONDS", default=3600),
    },
    "recommendations-outbox-sweep": {
        "task": "recommendations.tasks.outbox_sweep_task",
        "schedule": RECSITE_OUTBOX_SWEEP_SECONDS,
    },
}

# Recommendation API (recommendations/serving.py): the campaign `recommendations` uses when none is
# named; empty means the newest ACTIVE aws-user-personalization campaign of the `default` group.
RECSITE_DEFAULT_CAMPAIGN = env.str("RECSITE_DEFAULT_CAMPAIGN", default="")

# Filters: interactions per event type that Interactions.EVENT_TYPE conditions look at (Personalize: 100),
# cached masks per process, and how long a process trusts its view of the catalog before re-checking.
MAX_FILTER_INTERACTIONS = env.int("MAX_FILTER_INTERACTIONS", default=100)
RECSITE_FILTER_CACHE_SIZE = env.int("RECSITE_FILTER_CACHE_SIZE", default=512)
RECSITE_FILTER_CATALOG_CHECK_SECONDS = env.float("RECSITE_FILTER_CATALOG_CHECK_SECONDS", default=1.0)

# Amazon Personalize adapter (recommendations/backends/aws.py): optional endpoint URLs, e.g. a
# Personalize-compatible server or a local S3; empty means AWS's own endpoint for AWS_REGION.
PERSONALIZE_ENDPOINT_URL = env.str("PERSONALIZE_ENDPOINT_URL", default="")
PERSONALIZE_RUNTIME_ENDPOINT_URL = env.str("PERSONALIZE_RUNTIME_ENDPOINT_URL", default="")
PERSONALIZE_EVENTS_ENDPOINT_URL = env.str("PERSONALIZE_EVENTS_ENDPOINT_URL", default="")
S3_ENDPOINT_URL = env.str("S3_ENDPOINT_URL", default="")

# The Personalize-compatible endpoint (/personalize/, recommendations/compat/): requests are signed (SigV4)
# with an API key's id and secret; with this on (default: DEBUG) any credentials are accepted unchecked.
RECSITE_COMPAT_ACCEPT_ANY_CREDENTIALS = env.bool("RECSITE_COMPAT_ACCEPT_ANY_CREDENTIALS", default=DEBUG)

# Amazon Personalize jobs (recommendations/personalize_jobs.py, personalize_tasks.py, batch.py): the S3
# key prefix of exports, how often a task polls a job still being created (and for how long), how often it
# retries a transient AWS error, how many polls an in-process task (no broker) makes before leaving the job
# in progress, and how often beat imports rows changed since the last import (0: never).
PERSONALIZE_S3_PREFIX = env.str("PERSONALIZE_S3_PREFIX", default="recsite")
PERSONALIZE_POLL_SECONDS = env.int("PERSONALIZE_POLL_SECONDS", default=60)
PERSONALIZE_MAX_POLLS = env.int("PERSONALIZE_MAX_POLLS", default=2000)
PERSONALIZE_MAX_ERROR_RETRIES = env.int("PERSONALIZE_MAX_ERROR_RETRIES", default=5)
PERSONALIZE_EAGER_POLLS = env.int("PERSONALIZE_EAGER_POLLS", default=5)
PERSONALIZE_IMPORT_INTERVAL_SECONDS = env.int("PERSONALIZE_IMPORT_INTERVAL_SECONDS", default=86_400)
if PERSONALIZE_IMPORT_INTERVAL_SECONDS > 0:
    CELERY_BEAT_SCHEDULE["personalize-incremental-import"] = {
        "task": "recommendations.personalize_tasks.personalize_incremental_import_task",
        "schedule": PERSONALIZE_IMPORT_INTERVAL_SECONDS,
    }

# --- Access and limits (access/, recsite/graphql_access.py, recsite/graphql_view.py; README "Access") ---
# GraphQL root fields any caller may use without credentials (a browser frontend); every other one needs
# an API key scope (recommend / track / manage) or a staff session. putEvents still needs a valid trackingId.
RECSITE_PUBLIC_OPERATIONS = env.list(
    "RECSITE_PUBLIC_OPERATIONS",
    default=["recommendations", "relatedItems", "personalizedRanking", "putEvents"],
)
# Set: anonymous calls naming a userId need X-Recsite-User-Token = hex HMAC-SHA256(secret, userId).
RECSITE_USER_TOKEN_SECRET = env.str("RECSITE_USER_TOKEN_SECRET", default="")
RECSITE_API_KEY_TOUCH_SECONDS = env.int("RECSITE_API_KEY_TOUCH_SECONDS", default=60)
# Requests per window: per client address without credentials, per API key or staff user with them (0: off).
RECSITE_RATE_LIMIT_PER_IP = env.int("RECSITE_RATE_LIMIT_PER_IP", default=600)
RECSITE_RATE_LIMIT_PER_KEY = env.int("RECSITE_RATE_LIMIT_PER_KEY", default=6000)
RECSITE_RATE_LIMIT_WINDOW_SECONDS = env.int("RECSITE_RATE_LIMIT_WINDOW_SECONDS", default=60)
RECSITE_RATE_LIMIT_CACHE = "default"
# Reverse proxies in front of Recsite that append to X-Forwarded-For (0: the client is REMOTE_ADDR).
RECSITE_TRUSTED_PROXY_COUNT = env.int("RECSITE_TRUSTED_PROXY_COUNT", default=0)
# Largest request body (GraphQL answers 413 beyond it; the compatible endpoint InvalidInputException).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("RECSITE_MAX_REQUEST_BYTES", default=1_048_576)

# Rate-limit counters (and any other cache use): locmem per process by default; share them across
# processes in production with CACHE_URL=redis://127.0.0.1:6379/1.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# Browser frontends on other origins (comma-separated, e.g. https://shop.example.com) may call /graphql/.
CORS_ALLOWED_ORIGINS = env.list("RECSITE_CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/graphql/?$"
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "x-recsite-user-token")
CORS_ALLOW_CREDENTIALS = False  # cookies never cross origins: a session cannot be used from another site
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS hardening (manage.py check --deploy is clean with debug off). Behind a proxy that terminates TLS,
# set DJANGO_SECURE_PROXY_SSL_HEADER=1 (it must set X-Forwarded-Proto), or DJANGO_SECURE_SSL_REDIRECT=0
# when the proxy redirects to HTTPS itself.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
