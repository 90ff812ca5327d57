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
    "axes",  # sign-in lockouts (config/auth.py)
    "ml",
    "shop",
    "behavior",
    "search",
    "recommend",
    "sentiment",
    "support",
    "merchandising",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",  # Content-Security-Policy (settings: CONTENT_SECURITY_POLICY)
    "config.inputguard.RejectMalformedInputMiddleware",  # NUL in a URL or form -> 400
    "config.errors.ApiErrorMiddleware",  # JSON errors on /api/, 503 during outages
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "shop.middleware.VisitorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.security.NoStoreMiddleware",  # orders and account pages: Cache-Control no-store
    "axes.middleware.AxesMiddleware",  # last, as axes asks: turns a lockout into a 429
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
# Redis is optional for shoppers (README, "Reliability"): the cache fails soft (a miss, a warning, short
# timeouts, a back-off), so navigation, rate limits and DRF throttles serve (limits fail open) without it.
AISLE_REDIS_TIMEOUT_S = float(os.environ.get("AISLE_REDIS_TIMEOUT_S", "0.5"))
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "config.cache.FailSoftRedisCache", "LOCATION": REDIS_URL, "OPTIONS": {
        "socket_connect_timeout": AISLE_REDIS_TIMEOUT_S, "socket_timeout": AISLE_REDIS_TIMEOUT_S}}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "aisle"}}
# Sessions live in the database only: with cached_db a logout or cart change made while Redis is down
# would leave the old session in Redis, to be served again once it is back (a logged-out session revived).
SESSION_ENGINE = "django.contrib.sessions.backends.db"

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or None
# Publishing from a request is bounded (shop/outbox.py): short socket timeouts, no connection retries;
# what cannot be published waits in the outbox. The visibility timeout is when a message taken by a
# worker that died unacknowledged is delivered again (see config/celery.py for the per-queue limits).
AISLE_BROKER_VISIBILITY_TIMEOUT_S = int(os.environ.get("AISLE_BROKER_VISIBILITY_TIMEOUT_S", "600"))
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 1.0, "socket_timeout": 2.0, "max_retries": 0,
    "visibility_timeout": AISLE_BROKER_VISIBILITY_TIMEOUT_S,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"socket_connect_timeout": 1.0, "socket_timeout": 5.0}
CELERY_BROKER_CONNECTION_TIMEOUT = 2.0
# A scoring run or fine-tune with no heartbeat for this long lost its worker: marked interrupted (and a
# scoring run resumed) by the beat jobs in config/celery.py.
AISLE_SCORING_STALE_S = float(os.environ.get("AISLE_SCORING_STALE_S", "180"))
AISLE_TRAINING_STALE_S = float(os.environ.get("AISLE_TRAINING_STALE_S", "300"))
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
# Every sign-in (admin, shop login, API basic auth) goes through django-axes: after AXES_FAILURE_LIMIT
# failures from one address, or for one user name, sign-ins are refused (429) for AXES_COOLOFF_TIME,
# the right password included. Attempts are kept in the database, so a Redis outage does not lift them.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("AISLE_LOGIN_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = float(os.environ.get("AISLE_LOGIN_COOLOFF_MINUTES", "15")) / 60  # hours
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "config.clientip.client_ip"
AXES_LOCKOUT_CALLABLE = "config.auth.lockout_response"
AXES_VERBOSE = False
LOGIN_URL = "shop:login"
# Password-reset links work for 24 hours (the help article "Resetting your password" says so).
PASSWORD_RESET_TIMEOUT = 24 * 60 * 60
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
# How many proxies (load balancer, nginx) stand in front of the app: X-Forwarded-For is believed only
# that far (config/clientip.py); 0 ignores it, so a made-up header cannot reset a rate limit.
AISLE_TRUSTED_PROXIES = int(os.environ.get("AISLE_TRUSTED_PROXIES", "0"))
# DJANGO_SECURE_SSL=1: the site is HTTPS only: redirect, HSTS, secure cookies (README, "Security").
SECURE_SSL = env_bool("DJANGO_SECURE_SSL", False)
SECURE_SSL_REDIRECT = SECURE_SSL
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # probes of the container speak plain HTTP
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000")) if SECURE_SSL else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)
if AISLE_TRUSTED_PROXIES:  # only our own proxy may say the request came over HTTPS
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# A failed CSRF check answers JSON on /api/ (the schema documents it), Django's page elsewhere.
CSRF_FAILURE_VIEW = "config.errors.csrf_failure"
CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", SECURE_SSL)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): scripts only from our own static files, no inline script or
# event handler anywhere (templates load static/js/*; data reaches them through json_script).
# Inline style attributes stay allowed (product colour swatches, dashboard layout).
CONTENT_SECURITY_POLICY = {"DIRECTIVES": {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}}
# Request bodies past this are refused with 400 (forms by Django, JSON by config.parsers).
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("AISLE_MAX_BODY_BYTES", str(1024 * 1024)))
# django-ratelimit: client address as config/clientip.py says; counts in the shared cache.
RATELIMIT_IP_META_KEY = "config.clientip.client_ip"
RATELIMIT_FAIL_OPEN = True  # Redis down: limits fail open, as the DRF throttles do (README, "Reliability")
# Its check knows only memcached and django-redis: our FailSoftRedisCache is Django's RedisCache (shared,
# atomic incr); the local-memory cache is used only without REDIS_URL, i.e. one development process.
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"] + ([] if REDIS_URL else ["django_ratelimit.E003"])

# --- E-mail ----------------------------------------------------------------------------
# Without an SMTP host (the demo, DEBUG) mail is printed by the console backend; DJANGO_EMAIL_BACKEND overrides
# (e.g. django.core.mail.backends.filebased.EmailBackend with DJANGO_EMAIL_FILE_PATH, one file per message).
EMAIL_BACKEND = os.environ.get("DJANGO_EMAIL_BACKEND") or (
    "django.core.mail.backends.smtp.EmailBackend" if os.environ.get("EMAIL_HOST") and not DEBUG
    else "django.core.mail.backends.console.EmailBackend")
EMAIL_FILE_PATH = os.environ.get("DJANGO_EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Aisle <orders@aisle.example>")

# --- REST framework --------------------------------------------------------------------
REST_FRAMEWORK = {
    # drf-spectacular, plus the error responses each view can give (config/schema.py).
    "DEFAULT_SCHEMA_CLASS": "config.schema.AisleAutoSchema",
    # Bounded depth and size, no NUL or unpaired surrogates (config/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # Throttles take the client address from the same trusted-proxy count (config/clientip.py).
    "NUM_PROXIES": AISLE_TRUSTED_PROXIES,
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "config.auth.LockoutBasicAuthentication",  # basic auth through django-axes
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
        "search": os.environ.get("AISLE_RATE_SEARCH_API", "60/min"),
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
# The test gateway's own ledger of charges (outside the shop's database, as a real provider's is).
AISLE_TEST_GATEWAY_LEDGER = os.environ.get("AISLE_TEST_GATEWAY_LEDGER", str(BASE_DIR / "var" / "test-gateway.sqlite3"))
# Search (the search app): vectors beside keywords (0: keyword-only, no model is loaded), and models warmed in
# AppConfig.ready for servers without gunicorn's post_fork (runserver); gunicorn warms in post_fork.
AISLE_SEARCH_VECTORS = env_bool("AISLE_SEARCH_VECTORS", True)
AISLE_SEARCH_WARM_AT_READY = env_bool("AISLE_SEARCH_WARM_AT_READY", False)
# Products from which the vector index is HNSW (tuned M=32, ef 200/256) instead of exact float32 search
# (exact: 28 ms p95 and recall 1.0 at 100k products in bench/search.py, where HNSW's recall was 0.39).
AISLE_SEARCH_HNSW_FROM = int(os.environ.get("AISLE_SEARCH_HNSW_FROM", "200000"))

# Support assistant. Below this intent confidence the assistant asks to rephrase (once, then hands off).
AISLE_INTENT_THRESHOLD = float(os.environ.get("AISLE_INTENT_THRESHOLD", "0.5"))
# Knowledge-base answers are extractive (the article's own sentences, cited); the generator may phrase
# them and product answers only within a short budget and only if ml.grounding accepts its text.
# "auto": on where the generator runs on a GPU, off on CPU-only hosts (SmolLM2 needs 5-15 s there);
# "1"/"0" force it. Order answers are always templates, so they are instant.
AISLE_SUPPORT_GENERATE = os.environ.get("AISLE_SUPPORT_GENERATE", "auto")
AISLE_SUPPORT_GENERATE_TIMEOUT_S = float(os.environ.get("AISLE_SUPPORT_GENERATE_TIMEOUT_S", "3"))
AISLE_SUPPORT_GENERATE_MAX_TOKENS = int(os.environ.get("AISLE_SUPPORT_GENERATE_MAX_TOKENS", "80"))
# Below this cosine similarity no article is quoted; the assistant says so and offers a person.
AISLE_SUPPORT_KB_MIN_SIMILARITY = float(os.environ.get("AISLE_SUPPORT_KB_MIN_SIMILARITY", "0.45"))
AISLE_SUPPORT_CONFIRM_MINUTES = int(os.environ.get("AISLE_SUPPORT_CONFIRM_MINUTES", "10"))
# The console's phrased suggestion: same "auto" rule (extractive suggestions are always there).
AISLE_SUPPORT_SUGGEST_GENERATE = os.environ.get("AISLE_SUPPORT_SUGGEST_GENERATE", "auto")
AISLE_SUPPORT_SUGGEST_TIMEOUT_S = float(os.environ.get("AISLE_SUPPORT_SUGGEST_TIMEOUT_S", "8"))

# Product copy drafts (merchandising): the per-draft generation limit. Facts come from shop's and
# sentiment's facades (merchandising imports them), so no setting names them.
AISLE_COPY_TIMEOUT_S = float(os.environ.get("AISLE_COPY_TIMEOUT_S", "120"))

# Page-form rate limits (requests per minute per client), shared with the API throttles' spirit.
AISLE_PAGE_RATE_LIMITS = {
    "signup": int(os.environ.get("AISLE_RATE_SIGNUP_PER_MIN", "10")),
    "login": int(os.environ.get("AISLE_RATE_LOGIN_PER_MIN", "20")),
    "review": int(os.environ.get("AISLE_RATE_REVIEW_PER_MIN", "5")),
    "checkout": int(os.environ.get("AISLE_RATE_CHECKOUT_PER_MIN", "10")),
    # Pages that run a model on every request: the search page (embedder), a copy draft (generator).
    "search": int(os.environ.get("AISLE_RATE_SEARCH_PER_MIN", "60")),
    # Reset requests and new-password forms per client: mail bombing and token guessing stay slow.
    "password_reset": int(os.environ.get("AISLE_RATE_PASSWORD_RESET_PER_MIN", "5")),
    "password_change": int(os.environ.get("AISLE_RATE_PASSWORD_CHANGE_PER_MIN", "10")),
    "copy_draft": int(os.environ.get("AISLE_RATE_COPY_DRAFT_PER_MIN", "10")),
}

# --- Models (ml/) -----------------------------------------------------------------------
# Checkpoint folder per task; empty -> the active fine-tuned version, else the packaged default.
# e.g. AISLE_MODEL_GENERATOR=/models/qwen2.5-7b-instruct on a GPU machine.
AISLE_MODEL_PATHS = {
    task: os.environ.get(f"AISLE_MODEL_{task.upper()}", "")
    for task in ("embedder", "generator", "sentiment", "intent")
}
# Loaded by each gunicorn worker before it serves (gunicorn.conf.py -> config/warmup.py); /readyz says when.
AISLE_WARM_MODELS = os.environ.get("AISLE_WARM_MODELS", "embedder,intent,generator")
AISLE_WARM_SEARCH = env_bool("AISLE_WARM_SEARCH", True)
AISLE_DEVICE = os.environ.get("AISLE_DEVICE", "")  # "", "cpu", "cuda", "cuda:1"
AISLE_MODEL_DIR = os.environ.get("AISLE_MODEL_DIR", str(BASE_DIR / "var" / "models"))
AISLE_FINETUNE_BASE = os.environ.get("AISLE_FINETUNE_BASE", "")
# A promoted encoder version is exported to int8 ONNX (kept only if it agrees with fp32) for CPU serving.
AISLE_INT8_EXPORT = os.environ.get("AISLE_INT8_EXPORT", "1") == "1"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("AISLE_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
