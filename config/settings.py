"""Aisle settings: everything that differs between machines comes from the environment.

DATABASE_URL unset -> SQLite; REDIS_URL unset -> local-memory cache and Celery tasks run
in-process. See README.md ("Configuration") for every variable.
"""

import os
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)
TESTING = "pytest" in sys.modules or (len(sys.argv) > 1 and sys.argv[1] == "test")

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if DEBUG or TESTING:
        # Only for local development and the test suite; production must set it.
        SECRET_KEY = "insecure-dev-only-key-set-DJANGO_SECRET_KEY-in-production"
    else:
        raise ImproperlyConfigured("Set DJANGO_SECRET_KEY (or DJANGO_DEBUG=1 for local development).")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "ml",
    "shop",
    "behavior",
    "recommend",
    "sentiment",
    "support",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "shop.middleware.VisitorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shop.context_processors.storefront",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "db.sqlite3",
            "OPTIONS": {"timeout": 20},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, sessions, Celery -----------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "aisle"}}
    SESSION_ENGINE = "django.contrib.sessions.backends.db"

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or None
# Without a broker the tasks run in-process, so `make demo` needs no services.
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("AISLE_CELERY_QUEUE", "default")
CELERY_TASK_ROUTES = {
    # Heavy model work goes to its own queue so a GPU worker can take it.
    "ml.*": {"queue": "training"},
    "support.tasks.finetune_intents": {"queue": "training"},
}
CELERY_TIMEZONE = "UTC"

# --- Auth ------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "shop:login"
LOGIN_REDIRECT_URL = "shop:account"
LOGOUT_REDIRECT_URL = "shop:home"

# --- I18N, static ----------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Security --------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- E-mail ----------------------------------------------------------------------------
EMAIL_BACKEND = os.environ.get("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Aisle <orders@aisle.example>")

# --- REST framework --------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 24,
    "DEFAULT_THROTTLE_RATES": {
        # Public write endpoints; reads are not throttled.
        "cart_write": os.environ.get("AISLE_RATE_CART", "120/min"),
        "checkout": os.environ.get("AISLE_RATE_CHECKOUT", "10/min"),
        "review_write": os.environ.get("AISLE_RATE_REVIEW", "5/min"),
        "events": os.environ.get("AISLE_RATE_EVENTS", "120/min"),
        "autocomplete": os.environ.get("AISLE_RATE_AUTOCOMPLETE", "300/min"),
        "support_chat": os.environ.get("AISLE_RATE_SUPPORT", "30/min"),
    },
    "EXCEPTION_HANDLER": "config.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Aisle API",
    "DESCRIPTION": "Catalogue, cart, checkout, orders and reviews of the Aisle storefront.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI served from our own static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Aisle -----------------------------------------------------------------------------
# Dotted path of the payment gateway; the test gateway is the default (see shop/payments.py).
# A product saved in the admin is re-embedded by a task queued on commit (the minutely sweep
# catches up either way); off makes bulk imports cheaper.
AISLE_EMBED_ON_SAVE = os.environ.get("AISLE_EMBED_ON_SAVE", "1") == "1"

# Raw behaviour events older than this are rolled into daily aggregates by the nightly job.
AISLE_EVENT_RETENTION_DAYS = int(os.environ.get("AISLE_EVENT_RETENTION_DAYS", "90"))

# Who hears about a sentiment alert by e-mail (comma separated); empty: alerts show in the admin only.
AISLE_ALERT_EMAILS = [a.strip() for a in os.environ.get("AISLE_ALERT_EMAILS", "").split(",") if a.strip()]

AISLE_PAYMENT_GATEWAY = os.environ.get("AISLE_PAYMENT_GATEWAY", "shop.payments.TestPaymentGateway")
# Dotted path of the storefront's search backend: hybrid keyword + vector search with query understanding
# (recommend/search.py); "shop.services.keyword_search_backend" is the shop's plain keyword search.
AISLE_SEARCH_BACKEND = os.environ.get("AISLE_SEARCH_BACKEND", "recommend.search.search_backend")

# Support assistant. Below this intent confidence the assistant asks to rephrase (once, then hands off).
AISLE_INTENT_THRESHOLD = float(os.environ.get("AISLE_INTENT_THRESHOLD", "0.5"))
# Knowledge-base and product answers are phrased by the generator (then checked:
# every number must come from the retrieved facts, else the template answer is sent); order answers
# are always templates, so they are instant.
AISLE_SUPPORT_GENERATE = os.environ.get("AISLE_SUPPORT_GENERATE", "1") == "1"
AISLE_SUPPORT_GENERATE_TIMEOUT_S = float(os.environ.get("AISLE_SUPPORT_GENERATE_TIMEOUT_S", "8"))
AISLE_SUPPORT_GENERATE_MAX_TOKENS = int(os.environ.get("AISLE_SUPPORT_GENERATE_MAX_TOKENS", "80"))
# Below this cosine similarity no article is quoted; the assistant says so and offers a person.
AISLE_SUPPORT_KB_MIN_SIMILARITY = float(os.environ.get("AISLE_SUPPORT_KB_MIN_SIMILARITY", "0.45"))
AISLE_SUPPORT_CONFIRM_MINUTES = int(os.environ.get("AISLE_SUPPORT_CONFIRM_MINUTES", "10"))
AISLE_SUPPORT_SUGGEST_GENERATE = os.environ.get("AISLE_SUPPORT_SUGGEST_GENERATE", "1") == "1"
AISLE_SUPPORT_SUGGEST_TIMEOUT_S = float(os.environ.get("AISLE_SUPPORT_SUGGEST_TIMEOUT_S", "8"))

# Product copy drafts (shop.copywriting): where facts beyond the product row come from (each a dotted
# path to "(product_id) -> dict"; shop imports no other app), and the per-draft generation limit.
AISLE_COPY_FACT_SOURCES = [p.strip() for p in os.environ.get(
    "AISLE_COPY_FACT_SOURCES", "sentiment.services.copy_facts").split(",") if p.strip()]
AISLE_COPY_TIMEOUT_S = float(os.environ.get("AISLE_COPY_TIMEOUT_S", "120"))

# Page-form rate limits (requests per minute per client), shared with the API throttles' spirit.
AISLE_PAGE_RATE_LIMITS = {
    "signup": int(os.environ.get("AISLE_RATE_SIGNUP_PER_MIN", "10")),
    "login": int(os.environ.get("AISLE_RATE_LOGIN_PER_MIN", "20")),
    "review": int(os.environ.get("AISLE_RATE_REVIEW_PER_MIN", "5")),
    "checkout": int(os.environ.get("AISLE_RATE_CHECKOUT_PER_MIN", "10")),
}

# --- Models (ml/) -----------------------------------------------------------------------
# Checkpoint folder per task; empty -> the active fine-tuned version, else the packaged default.
# e.g. AISLE_MODEL_GENERATOR=/models/qwen2.5-7b-instruct on a GPU machine.
AISLE_MODEL_PATHS = {
    task: os.environ.get(f"AISLE_MODEL_{task.upper()}", "")
    for task in ("embedder", "generator", "sentiment", "intent")
}
AISLE_DEVICE = os.environ.get("AISLE_DEVICE", "")  # "", "cpu", "cuda", "cuda:1"
AISLE_MODEL_DIR = os.environ.get("AISLE_MODEL_DIR", str(BASE_DIR / "var" / "models"))
AISLE_FINETUNE_BASE = os.environ.get("AISLE_FINETUNE_BASE", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("AISLE_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
