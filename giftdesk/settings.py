"""GiftDesk settings: every value comes from the environment (django-environ).

Defaults are safe for the local demo (SQLite under var/, ORM task broker). Production sets
DEBUG=false, SECRET_KEY, ALLOWED_HOSTS, GIFTDESK_HTTPS=true and GIFTDESK_CREDENTIALS_KEY;
the README lists every variable.
"""

import os
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# The fallback key is for the local demo only; `check --deploy` rejects it, so production
# must set SECRET_KEY.
SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-giftdesk-local-demo-only")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Where providers reach this GiftDesk (webhooks), e.g. https://giftdesk.example.com/.
# Blank: the address the admin is used at.
GIFTDESK_PUBLIC_URL = env.str("GIFTDESK_PUBLIC_URL", default="")

# Loopback provider emulators under /emulators/<kind>/: on for the demo, off in production.
GIFTDESK_EMULATORS = env.bool("GIFTDESK_EMULATORS", default=DEBUG)

INSTALLED_APPS = [
    # django.contrib.admin, with GiftDesk's site (its start page) as admin.site.
    "giftdesk.apps.GiftDeskAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # Before staticfiles: runserver leaves static files to whitenoise, as gunicorn does.
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_q",
    "import_export",
    "rangefilter",  # the order list's date ranges (orders/admin_order_filters.py)
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "csp",
    "health_check",  # /health/ (giftdesk/health.py)
    "auditlog",
    "audit",
    "providers",
    "orders",
    *(["emulators"] if GIFTDESK_EMULATORS else []),
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files straight from the app server, before sessions and the rest (whitenoise's place).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "giftdesk.twofactor.RequireTwoFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # After authentication: the signed-in user is the actor of audit log entries.
    "auditlog.middleware.AuditlogMiddleware",
    # The address each of our own audit entries records (audit.context).
    "audit.middleware.AuditAddressMiddleware",
    # Last, as axes asks: turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "giftdesk.urls"
WSGI_APPLICATION = "giftdesk.wsgi.application"

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
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'giftdesk.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker share one file: WAL lets readers run beside the writer,
    # IMMEDIATE transactions take the write lock up front (no upgrade deadlocks), and the
    # timeout makes a writer wait instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": env.int("SQLITE_BUSY_TIMEOUT_SECONDS", default=30),
        }
    )
    # Tests run against a file so that worker processes started by a test see its data;
    # one file per test run, so two runs on one machine never share a database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-giftdesk-{os.getpid()}.sqlite3")}
    VAR_DIR.mkdir(exist_ok=True)
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")

CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- Task queue (django-q2) -------------------------------------------------------------
# The ORM broker delivers at least once: a task still running when `retry` passes is
# handed out again. `timeout` stays well below `retry`, and every task is safe to run
# twice because the database state, not the queue, decides what happens.
Q_TIMEOUT_SECONDS = env.int("GIFTDESK_TASK_TIMEOUT", default=120)
Q_CLUSTER = {
    "name": "giftdesk",
    "workers": env.int("GIFTDESK_WORKERS", default=2),
    "timeout": Q_TIMEOUT_SECONDS,
    "retry": Q_TIMEOUT_SECONDS * 3,
    "max_attempts": 3,
    "ack_failures": True,
    "catch_up": False,
    "poll": 0.5,
    "save_limit": 1000,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Provider credentials ---------------------------------------------------------------
# Fernet keys (comma-separated, newest first, so keys can be rotated). Without one, a key
# is derived from SECRET_KEY, which is fine for the demo only.
GIFTDESK_CREDENTIALS_KEYS = env.list("GIFTDESK_CREDENTIALS_KEY", default=[])

# Provider HTTP: seconds to connect, seconds to wait for an answer.
GIFTDESK_HTTP_CONNECT_TIMEOUT = env.float("GIFTDESK_HTTP_CONNECT_TIMEOUT", default=5.0)
GIFTDESK_HTTP_READ_TIMEOUT = env.float("GIFTDESK_HTTP_READ_TIMEOUT", default=30.0)
# Hosts a production account may send requests (and so credentials) to besides its
# provider's documented ones: a proxy, an emulator. With the emulators on, loopback.
GIFTDESK_PROVIDER_HOSTS_ALLOWED = env.list(
    "GIFTDESK_PROVIDER_HOSTS_ALLOWED",
    default=["127.0.0.1", "localhost", "::1"] if GIFTDESK_EMULATORS else [],
)

# --- Delivery engine ---------------------------------------------------------------------
GIFTDESK_MAX_SUBMIT_ATTEMPTS = env.int("GIFTDESK_MAX_SUBMIT_ATTEMPTS", default=5)
GIFTDESK_RETRY_BASE_SECONDS = env.float("GIFTDESK_RETRY_BASE_SECONDS", default=5.0)
# The longest wait between two attempts of one submission (with jitter below it), unless the
# provider asks for more (Retry-After). It is also how often an outcome still unknown after
# GIFTDESK_MAX_SUBMIT_ATTEMPTS is asked again: that replay reuses the key, so it buys nothing.
GIFTDESK_RETRY_MAX_SECONDS = env.float("GIFTDESK_RETRY_MAX_SECONDS", default=60.0)
# A request in flight holds a lease its worker renews every third of this (orders.leases); a
# lease run out means the worker died: the request is retried with its own key, within a
# minute. GIFTDESK_STALE_AFTER_SECONDS, the setting before the lease, is still read as its length.
GIFTDESK_LEASE_SECONDS = env.float("GIFTDESK_LEASE_SECONDS",
                                   default=env.float("GIFTDESK_STALE_AFTER_SECONDS", default=30.0))
# How soon orders a provider accepted and is still fulfilling are first looked up; later
# lookups of the same provider order back off from it (doubling).
GIFTDESK_POLL_SECONDS = env.float("GIFTDESK_POLL_SECONDS", default=1.0)
# The same, for an account whose provider reports its cards by webhook (a webhook secret is
# set): the webhook says when a card is done; lookups are the fallback for one that never came.
GIFTDESK_POLL_WEBHOOK_SECONDS = env.float("GIFTDESK_POLL_WEBHOOK_SECONDS", default=30.0)
# Lookups of one provider order back off (doubling) up to this, to spare the rate limit.
GIFTDESK_POLL_MAX_SECONDS = env.float("GIFTDESK_POLL_MAX_SECONDS", default=300.0)
# Provider calls' bodies, kept for diagnosis only (orders.call_retention): each body is
# stored cut at this many bytes (0: whole), and blanked by a daily task after this many days
# (0: kept for ever). The call itself (method, URL, status, links to its orders) stays.
GIFTDESK_CALL_BODY_MAX_BYTES = env.int("GIFTDESK_CALL_BODY_MAX_BYTES", default=32_000)
GIFTDESK_CALL_BODY_RETENTION_DAYS = env.int("GIFTDESK_CALL_BODY_RETENTION_DAYS", default=90)

# --- Money controls (DESIGN.md "Approvals and limits") --------------------------------------
# Per currency, e.g. "DKK=10000,EUR=1500,USD=1500": a batch whose total in a currency
# reaches its threshold needs an approver who is not its uploader. Once set, a currency not
# listed always needs approval; 0 means every batch. Unset: no batch needs approval.
GIFTDESK_APPROVAL_THRESHOLDS = env.str("GIFTDESK_APPROVAL_THRESHOLDS", default=None)
# A provider's wallet balance older than this is asked again before it is compared with a
# batch's total (preview, approval, Send).
GIFTDESK_BALANCE_MAX_AGE_SECONDS = env.float("GIFTDESK_BALANCE_MAX_AGE_SECONDS", default=300.0)

# --- Spreadsheet limits ------------------------------------------------------------------
GIFTDESK_IMPORT_MAX_ROWS = env.int("GIFTDESK_IMPORT_MAX_ROWS", default=50_000)
GIFTDESK_IMPORT_MAX_BYTES = env.int("GIFTDESK_IMPORT_MAX_BYTES", default=20 * 1024 * 1024)
GIFTDESK_IMPORT_MAX_FIELD_CHARS = env.int("GIFTDESK_IMPORT_MAX_FIELD_CHARS", default=1000)
# Rows read from a sheet, blank ones included: reading stops there, so a small workbook of
# millions of empty rows costs nothing. Blank rows still do not count as data rows.
GIFTDESK_IMPORT_MAX_SHEET_ROWS = env.int("GIFTDESK_IMPORT_MAX_SHEET_ROWS", default=2 * GIFTDESK_IMPORT_MAX_ROWS)
# Each part of an XLSX, inflated (a normal 50,000-row sheet is about 25 MB).
GIFTDESK_IMPORT_MAX_UNZIPPED_BYTES = env.int("GIFTDESK_IMPORT_MAX_UNZIPPED_BYTES", default=100 * 1024 * 1024)
# An XLSX is read in a child process with this much memory and time, then refused (a
# normal 50,000-row workbook: about 120 MB and 7 s). Keep the time under the web server's
# own request timeout (gunicorn: 30 s), or the worker is killed before the user is told.
GIFTDESK_IMPORT_READ_MEMORY_MB = env.int("GIFTDESK_IMPORT_READ_MEMORY_MB", default=512)
GIFTDESK_IMPORT_READ_SECONDS = env.float("GIFTDESK_IMPORT_READ_SECONDS", default=25.0)
# A recipient who got or is due to get a card (an order not cancelled or failed) within this many days: a warning.
GIFTDESK_RECENT_RECIPIENT_DAYS = env.int("GIFTDESK_RECENT_RECIPIENT_DAYS", default=30)
DATA_UPLOAD_MAX_MEMORY_SIZE = GIFTDESK_IMPORT_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# An upload waits here (0700, files 0600, random names) between preview and confirm, and is
# deleted on confirm, on refusal, or this many hours later (recipients' personal data).
GIFTDESK_UPLOAD_DIR = env.path("GIFTDESK_UPLOAD_DIR", default=VAR_DIR / "uploads")
GIFTDESK_UPLOAD_MAX_AGE_HOURS = env.float("GIFTDESK_UPLOAD_MAX_AGE_HOURS", default=24.0)
IMPORT_EXPORT_TMP_STORAGE_CLASS = "orders.uploads.UploadStorage"


# --- Auth, i18n, static -------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
# whitenoise serves what collectstatic wrote: hashed names cached for ever, gzip beside each.
# Until collectstatic has run (the demo, the tests, the benchmarks) there is no manifest: pages
# then name the plain files and whitenoise finds them in the apps' directories, as runserver
# does (giftdesk/staticfiles.py).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "giftdesk.staticfiles.ManifestStaticFilesStorage"},
}
GIFTDESK_STATIC_COLLECTED = (Path(STATIC_ROOT) / "staticfiles.json").is_file()
WHITENOISE_USE_FINDERS = WHITENOISE_AUTOREFRESH = DEBUG or not GIFTDESK_STATIC_COLLECTED

# /health/ (giftdesk/health.py): the task queue counts as down when no worker has run the
# schedules (the engine's sweep is due every minute) for this many seconds.
GIFTDESK_HEALTH_WORKER_SECONDS = env.float("GIFTDESK_HEALTH_WORKER_SECONDS", default=120.0)

# --- Security (GIFTDESK_HTTPS=true behind TLS) --------------------------------------------
GIFTDESK_HTTPS = env.bool("GIFTDESK_HTTPS", default=False)
SECURE_SSL_REDIRECT = GIFTDESK_HTTPS
# A load balancer probes its backends over plain HTTP, without X-Forwarded-Proto.
SECURE_REDIRECT_EXEMPT = [r"^health/"]
SESSION_COOKIE_SECURE = GIFTDESK_HTTPS
CSRF_COOKIE_SECURE = GIFTDESK_HTTPS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if GIFTDESK_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = GIFTDESK_HTTPS
SECURE_HSTS_PRELOAD = GIFTDESK_HTTPS
GIFTDESK_BEHIND_PROXY = env.bool("GIFTDESK_BEHIND_PROXY", default=False)
if GIFTDESK_BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Sessions end after a working day, and with the browser (a shared machine keeps nothing).
GIFTDESK_SESSION_HOURS = env.float("GIFTDESK_SESSION_HOURS", default=9)
SESSION_COOKIE_AGE = int(GIFTDESK_SESSION_HOURS * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# Content-Security-Policy: nothing inline, nothing from elsewhere, never framed.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# --- Login security: lockout (django-axes) and second factor (django-otp) -----------------
# axes' backend comes first: it refuses a locked-out user before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Locked after this many failures of one username from one address, for the cool-off, or
# until an administrator resets it (`manage.py axes_reset_username NAME`, or the admin).
AXES_FAILURE_LIMIT = env.int("GIFTDESK_LOGIN_FAILURE_LIMIT", default=5)
GIFTDESK_LOGIN_COOLOFF_MINUTES = env.int("GIFTDESK_LOGIN_COOLOFF_MINUTES", default=30)
AXES_COOLOFF_TIME = timedelta(minutes=GIFTDESK_LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "giftdesk.lockout.lockout_response"
# The log names the username and address of a failure (never the password): an operator
# must see who is being guessed at, and from where.
AXES_SENSITIVE_PARAMETERS = []
if GIFTDESK_BEHIND_PROXY:
    # The client is the address the proxy appended last to X-Forwarded-For; earlier
    # entries come from the client itself and could be forged to dodge the lockout.
    AXES_IPWARE_PROXY_ORDER = "right-most"
    AXES_IPWARE_PROXY_COUNT = env.int("GIFTDESK_PROXY_COUNT", default=1)
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")

# Approvers and administrators must log in with a TOTP code; others may enrol.
GIFTDESK_REQUIRE_2FA = env.bool("GIFTDESK_REQUIRE_2FA", default=GIFTDESK_HTTPS)
OTP_TOTP_ISSUER = env.str("GIFTDESK_2FA_ISSUER", default="GiftDesk")
# The device admin lets an administrator remove a lost device, never read its secret.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # axes logs every failed login and lockout at WARNING, successes at INFO; its start-up
    # banner on every manage.py command is left out.
    "loggers": {"urllib3": {"level": "WARNING"}, "axes": {"level": "INFO"},
                "axes.apps": {"level": "WARNING"}},
}
