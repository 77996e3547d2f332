"""Wharf's one settings module: every knob comes from a WHARF_* variable; the defaults are the embedded ones."""

import ipaddress
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url

from portal.env import ConfigError, env_bool, env_int, env_list, env_secret, env_str
from portal.ldap_settings import ldap_settings_from_env

BASE_DIR = Path(__file__).resolve().parent.parent
VERSION = "0.1.0"

DATA_DIR = Path(env_str("WHARF_DATA_DIR", str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """Return WHARF_SECRET_KEY, or a key generated once and kept in the data directory."""
    key = env_secret("WHARF_SECRET_KEY")
    if key:
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("WHARF_DEBUG", False)
ALLOWED_HOSTS = env_list("WHARF_ALLOWED_HOSTS", ["*"])
CSRF_TRUSTED_ORIGINS = env_list("WHARF_CSRF_TRUSTED_ORIGINS", [])
# The appliance serves HTTPS itself; behind a TLS-terminating proxy set WHARF_BEHIND_PROXY.
if env_bool("WHARF_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# HSTS on answers served over HTTPS (Django's SecurityMiddleware sends it only then; behind a proxy, when it says
# the client used https). Browsers ignore it on a connection whose certificate they do not trust, so it never locks
# out someone who has not installed the portal's CA yet. 0 turns it off.
SECURE_HSTS_SECONDS = env_int("WHARF_HSTS_SECONDS", 365 * 24 * 3600, minimum=0)
# Scripts, styles, fonts and images only from the portal itself: no inline script or style anywhere (see
# ContentSecurityPolicyMiddleware); data: images and fonts are Clarity's and Swagger UI's icons.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

PORT = env_int("WHARF_PORT", 8282, minimum=1)
EXAMPLE_USERS = env_bool("WHARF_EXAMPLE_USERS", False)

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_htmx",
    "axes",
    "portal.core",
    "portal",
    "projects",
    "registries",
    "hosts",
    "replication",
    "scanning",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "portal.core.middleware.ContentSecurityPolicyMiddleware",
    "portal.core.middleware.RequestBodyLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "portal.core.middleware.SessionExpiryMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
AUTH_USER_MODEL = "portal.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"

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
                "portal.context.navigation",
                "portal.context.component_health",
                "projects.selection.project_selector",
            ],
        },
    },
]

# Each web thread and each worker process keeps its database connection for WHARF_DATABASE_CONN_MAX_AGE seconds
# (0: a new one per request) and checks it before reusing it after a request or task (CONN_HEALTH_CHECKS), so a
# restarted PostgreSQL costs one failed check, not an error page. Opening a PostgreSQL connection costs more than
# most requests do. Django closes a connection at the start and end of each request once it is that old or broken,
# Celery's Django fix-up does the same before and after every task, and the portal's own threads close theirs. A web
# replica holds WHARF_WEB_WORKERS x 4 connections, a worker one per process: keep the sum under PostgreSQL's
# max_connections (100 by default).
DATABASES = {
    "default": dj_database_url.parse(
        env_str("WHARF_DATABASE_URL", f"sqlite:///{DATA_DIR / 'wharf.sqlite3'}"),
        conn_max_age=env_int("WHARF_DATABASE_CONN_MAX_AGE", 600, minimum=0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Web, worker and beat share one SQLite file in the embedded mode. Write-ahead logging lets readers go on while
    # one of them writes (the rollback journal locks the whole file for a write); with it, synchronous=NORMAL
    # syncs at checkpoints rather than at every commit, and a crash of the process loses nothing (a power cut
    # may lose the last commits, never the file). A writer waits up to 20 s for the lock (the busy timeout), and
    # transactions take it when they begin (IMMEDIATE), so two writers queue instead of one failing on upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("WHARF_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
NODE_MODULES = BASE_DIR / "node_modules"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/cds-core", NODE_MODULES / "@cds" / "core"),
    ("vendor/clr-ui", NODE_MODULES / "@clr" / "ui"),
    ("vendor/htmx", NODE_MODULES / "htmx.org" / "dist"),
    ("vendor/chartjs", NODE_MODULES / "chart.js" / "dist"),
]
# Serve straight from the finders: the embedded mode needs no collectstatic step.
WHITENOISE_USE_FINDERS = True

# Session length follows the "Token Expiration (Minutes)" system setting (see the middleware).
SESSION_COOKIE_SECURE = env_bool("WHARF_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_ENGINE = "django.contrib.sessions.backends.db"

# The login throttle first (see below); LDAP settings put the directory between the two.
AUTHENTICATION_BACKENDS = ["portal.core.throttle.LoginThrottleBackend", "django.contrib.auth.backends.ModelBackend"]

# LDAP / Active Directory, the stand-in for the Platform Services Controller (see portal/ldap_settings.py).
LDAP_URL = ""
globals().update(ldap_settings_from_env())

# Login throttling (portal/core/throttle.py, on django-axes): after WHARF_LOGIN_FAILURE_LIMIT failed logins
# within WHARF_LOGIN_COOLOFF_SECONDS of each other, a user name or client address (WHARF_LOGIN_LOCKOUT_BY)
# may not log in on any path (UI, API Basic, token service) until its newest failure is that old, or a
# portal admin unlocks it. 0 turns throttling off. The counters live in the database, shared by every process.
LOGIN_FAILURE_LIMIT = env_int("WHARF_LOGIN_FAILURE_LIMIT", 10, minimum=0)
LOGIN_COOLOFF_SECONDS = env_int("WHARF_LOGIN_COOLOFF_SECONDS", 600, minimum=1)
LOGIN_LOCKOUT_BY = env_list("WHARF_LOGIN_LOCKOUT_BY", ["user", "address"])
_LOCKOUT_PARAMETERS: dict[str, str | list[str]] = {
    "user": "username",
    "address": "ip_address",
    "user+address": ["username", "ip_address"],
}
if unknown := [item for item in LOGIN_LOCKOUT_BY if item not in _LOCKOUT_PARAMETERS]:
    raise ConfigError(
        f"WHARF_LOGIN_LOCKOUT_BY: expected a comma-separated list of user, address or user+address, got {unknown}"
    )
AXES_ENABLED = LOGIN_FAILURE_LIMIT > 0
AXES_FAILURE_LIMIT = max(LOGIN_FAILURE_LIMIT, 1)
AXES_COOLOFF_TIME = timedelta(seconds=LOGIN_COOLOFF_SECONDS)
AXES_LOCKOUT_PARAMETERS = [_LOCKOUT_PARAMETERS[item] for item in LOGIN_LOCKOUT_BY]
AXES_HANDLER = "portal.core.throttle.LoginAttemptHandler"
AXES_CLIENT_IP_CALLABLE = "portal.core.audit.client_address"
AXES_USERNAME_CALLABLE = "portal.core.throttle.username_key"
# Refused attempts neither count nor push the cool-off further: a locked-out client costs one query, and the
# person locked out knows when to come back. A success does not reset the counters: otherwise an attacker
# with an account of their own would wipe their address's failures by logging in now and then.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = False
# The audit log records logins, failures and lockouts; axes keeps only its counters.
AXES_DISABLE_ACCESS_LOG = True
AXES_ENABLE_ADMIN = False
AXES_VERBOSE = False
# Each login path answers a lockout itself (page, API error, registry error), so axes' middleware is not used.
SILENCED_SYSTEM_CHECKS = ["axes.W002"]

# HTTP Basic logins (API scripts, the docker token service) are remembered for WHARF_BASIC_AUTH_CACHE_SECONDS after
# a successful password check, so the next request does not hash the password again (portal/core/remembered_logins.py:
# a keyed hash, never the password; forgotten on password change, disable, deletion and logout). 0 turns it off.
BASIC_AUTH_CACHE_SECONDS = env_int("WHARF_BASIC_AUTH_CACHE_SECONDS", 300, minimum=0)

# Caches. "default" holds what each process may keep to itself (external registries' catalogs). "logins" holds the
# remembered logins and must be shared by every web process, so that a logout in one reaches the others: Redis at
# WHARF_CACHE_URL (the compose stack's), else files in the data directory, which every process of `make run` (one
# machine) shares. A cache that fails costs a password check, never a refusal.
CACHE_URL = env_str("WHARF_CACHE_URL")
if CACHE_URL and urlsplit(CACHE_URL).scheme not in ("redis", "rediss", "unix"):
    raise ConfigError(f"WHARF_CACHE_URL: expected a redis:// URL, got {CACHE_URL!r}")
_LOGINS_CACHE: dict[str, Any] = (
    {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CACHE_URL,
        "KEY_PREFIX": "wharf",
        # An unreachable Redis must not hold a request up for long.
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
    if CACHE_URL
    else {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(DATA_DIR / "cache" / "logins"),
        "OPTIONS": {"MAX_ENTRIES": 10000},
    }
)
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "logins": _LOGINS_CACHE,
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.core.authentication.BearerTokenAuthentication",
        "portal.core.authentication.BasicAuthentication",
        "portal.core.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "portal.core.pagination.PageNumberPagination",
    "PAGE_SIZE": 25,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "portal.core.schema.AutoSchema",
    "EXCEPTION_HANDLER": "portal.core.errors.api_exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "portal.core.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Wharf API",
    "DESCRIPTION": "Container management portal: projects, members, registries, hosts.",
    "VERSION": VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The API's contract is JSON. It also parses form bodies (scripts posting with curl -d), but form encoding
    # cannot say null or an empty list, so the schema offers JSON only.
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
    # Hosts and jobs both have a "state"; each choice set gets its own component name.
    "ENUM_NAME_OVERRIDES": {
        "JobStateEnum": "portal.core.models.JobState",
        "CredentialKindEnum": "portal.core.models.CredentialKind",
        "EndpointKindEnum": "replication.models.EndpointKind",
        "TriggerEnum": "replication.models.Trigger",
        "ExecutionCauseEnum": "replication.models.Execution.Cause",
        "TaskOperationEnum": "replication.models.Task.Operation",
        "ScanStateEnum": "scanning.models.ScanState",
        "ScanScheduleEnum": "portal.core.models.ScanSchedule",
    },
}

# Celery: the embedded default is kombu's filesystem transport, so `make run` needs no Redis.
BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = env_str("WHARF_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
# The queue web, beat and workers send tasks to (and workers consume): separate deployments may
# share one Redis database with queues of their own.
CELERY_TASK_DEFAULT_QUEUE = env_str("WHARF_TASK_QUEUE", "celery")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env_bool("WHARF_TASKS_EAGER", False)
# At least once: a task is acknowledged when it ends, a worker takes one at a time, and a task
# whose worker process died goes back to the queue. Jobs claim their row, so a second delivery
# of a job already running or done does nothing.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"registry_protocol_noise": {"()": "portal.log_filters.RegistryProtocolNoise"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("WHARF_LOG_LEVEL", "INFO")},
    "loggers": {
        "django_auth_ldap": {"level": "WARNING"},
        # axes logs every failure; the audit log has them (and each lockout) already.
        "axes": {"level": "ERROR"},
        "django.request": {"filters": ["registry_protocol_noise"]},
    },
}

# Extra names (and addresses) the generated HTTPS certificate covers.
EXTRA_HOSTNAMES = env_list("WHARF_HOSTNAMES", [])
BIND_ADDRESS = env_str("WHARF_BIND", "0.0.0.0")
WEB_WORKERS = env_int("WHARF_WEB_WORKERS", 2, minimum=1)
# Slow clients (portal/web_worker.py): the seconds a client gets for its TLS handshake and request head, and for
# any stall while it sends or reads; past that grace a body must keep up WEB_MIN_BODY_RATE bytes per second; bodies
# up to WEB_BUFFERED_BODY_BYTES are received before a thread runs the request.
WEB_CLIENT_TIMEOUT_SECONDS = env_int("WHARF_WEB_CLIENT_TIMEOUT_SECONDS", 30, minimum=1)
WEB_MIN_BODY_RATE = env_int("WHARF_WEB_MIN_BODY_RATE", 1024, minimum=1)
WEB_BUFFERED_BODY_BYTES = env_int("WHARF_WEB_BUFFERED_BODY_BYTES", 1024 * 1024, minimum=0)
# The longest request body outside /v2/ (API JSON, forms, registry notifications): longer ones are a 413 unread.
MAX_REQUEST_BODY_BYTES = env_int("WHARF_MAX_REQUEST_BODY_BYTES", 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES


def _generated_secret(filename: str) -> str:
    """A secret generated once and kept in the data directory."""
    path = DATA_DIR / filename
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


# The integrated registry (CNCF distribution). Clients never reach it directly: the portal's
# /v2/ proxy and token service stand in front of it.
REGISTRY_URL = env_str("WHARF_REGISTRY_URL", "http://127.0.0.1:5000").rstrip("/")
REGISTRY_BINARY = env_str("WHARF_REGISTRY_BINARY", "docker-registry")
REGISTRY_STORAGE_DIR = Path(env_str("WHARF_REGISTRY_STORAGE_DIR", str(DATA_DIR / "registry")))
REGISTRY_SERVICE = "wharf-registry"
# The audience of the tokens notary (content trust) accepts: the token service answers `service=wharf-notary`.
NOTARY_SERVICE = "wharf-notary"
TOKEN_ISSUER = "wharf-token-service"
# Shared secret the registry sends with its event notifications.
REGISTRY_NOTIFY_SECRET = env_secret("WHARF_REGISTRY_NOTIFY_SECRET") or _generated_secret("registry_notify_secret")
# The registry's configuration file, which garbage collection reads (the launcher writes it there).
REGISTRY_CONFIG_PATH = Path(env_str("WHARF_REGISTRY_CONFIG_PATH", str(DATA_DIR / "registry" / "config.yml")))

# Where a registry run on its own (docker-compose.yml's `registry` service, config written by
# `manage.py registry_config`) listens, sends its event notifications and points clients for tokens.
# `make run` ignores these three: its registry child always listens on WHARF_REGISTRY_URL's loopback
# address and notifies the launcher's own web server. The defaults are the embedded ones.
_registry_url = urlsplit(REGISTRY_URL)
REGISTRY_LISTEN = env_str("WHARF_REGISTRY_LISTEN", f"{_registry_url.hostname}:{_registry_url.port or 80}")
REGISTRY_NOTIFY_URL = env_str("WHARF_REGISTRY_NOTIFY_URL", f"https://127.0.0.1:{PORT}/service/notifications")
# The /v2/ proxy rewrites the realm for clients; this one serves direct diagnostics.
REGISTRY_TOKEN_REALM = env_str(
    "WHARF_REGISTRY_TOKEN_REALM", f"https://{(EXTRA_HOSTNAMES or ['127.0.0.1'])[0]}:{PORT}/service/token"
)

# Notary (content trust): notary-server answers docker clients at NOTARY_LISTEN (DOCKER_CONTENT_TRUST_SERVER is
# NOTARY_URL), notary-signer holds the keys at NOTARY_SIGNER_ADDRESS (gRPC, mutual TLS, never for clients). Their
# trust data and keys live in PostgreSQL (NOTARY_DATABASE_URL): the Debian build of notary 0.7 carries the
# mysql, postgres and rethinkdb drivers, no sqlite3, and its memory store forgets everything on a restart. The
# default is a database beside the portal's own when that is PostgreSQL, and the machine's own PostgreSQL when the
# portal runs on SQLite (the embedded default); the launcher connects at start and leaves notary off, saying why,
# when that PostgreSQL is not there. WHARF_NOTARY_ENABLED=false keeps notary off.
NOTARY_ENABLED = env_bool("WHARF_NOTARY_ENABLED", True)
NOTARY_LISTEN = env_str("WHARF_NOTARY_LISTEN", f"{BIND_ADDRESS}:4443")
NOTARY_URL = env_str(
    "WHARF_NOTARY_URL", f"https://{(EXTRA_HOSTNAMES or ['127.0.0.1'])[0]}:{NOTARY_LISTEN.rsplit(':', 1)[1]}"
).rstrip("/")
NOTARY_SIGNER_ADDRESS = env_str("WHARF_NOTARY_SIGNER_ADDRESS", "127.0.0.1:7899")
# Where the portal itself reads trust data (to verify signatures): notary on this machine unless set (compose names
# its notary-server service). Its certificate is the portal CA's, like every TLS server of the portal.
# With notary turned off there is none to read from (content trust then says it is not configured).
NOTARY_INTERNAL_URL = env_str(
    "WHARF_NOTARY_INTERNAL_URL", f"https://127.0.0.1:{NOTARY_LISTEN.rsplit(':', 1)[1]}" if NOTARY_ENABLED else ""
).rstrip("/")
# Where Debian's PostgreSQL listens on the machine itself; a login there as the same user needs no password (peer).
LOCAL_POSTGRES_SOCKET_DIR = Path("/var/run/postgresql")


def _notary_database_default() -> str:
    """Where notary keeps its trust data: PostgreSQL, beside the portal's own database or on this machine."""
    from urllib.parse import quote

    db = DATABASES["default"]
    if db["ENGINE"].endswith("postgresql"):
        login = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
        return f"postgres://{login}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}_notary"
    return _local_notary_database()


def _local_notary_database() -> str:
    """The machine's own PostgreSQL for a SQLite portal: its socket when there is one, else 127.0.0.1:5432.

    The login is the user running the portal (as psql's default), so Debian's peer authentication lets it in over
    the socket once that user has a role (`sudo -u postgres createuser --createdb $USER`). The database is named
    once per data directory and kept there: the signer encrypts its keys with this data directory's passphrase,
    so a new data directory must not find the keys an old one left.
    """
    import getpass
    from urllib.parse import quote

    path = DATA_DIR / "notary_database"
    if not path.exists():
        path.write_text(f"wharf_notary_{secrets.token_hex(4)}")
        path.chmod(0o600)
    name = path.read_text().strip()
    user = quote(getpass.getuser(), safe="")
    if (LOCAL_POSTGRES_SOCKET_DIR / ".s.PGSQL.5432").exists():
        return f"postgres://{user}@/{name}?host={quote(str(LOCAL_POSTGRES_SOCKET_DIR), safe='')}"
    return f"postgres://{user}@127.0.0.1:5432/{name}"


# The default only when needed: for a SQLite portal it names a database in the data directory.
NOTARY_DATABASE_URL = env_str("WHARF_NOTARY_DATABASE_URL") or (_notary_database_default() if NOTARY_ENABLED else "")
# The passphrase that encrypts the signer's private keys in its database; unset, one generated in the data directory.
NOTARY_SIGNER_PASSPHRASE = env_secret("WHARF_NOTARY_SIGNER_PASSPHRASE") or _generated_secret("notary_signer_passphrase")
NOTARY_DIR = DATA_DIR / "notary"

# The Fernet key that encrypts stored credential secrets (passwords, private keys). Unset, a key is
# generated once in the data directory; every web and worker replica must use the same one.
CREDENTIALS_KEY = env_secret("WHARF_CREDENTIALS_KEY")
if CREDENTIALS_KEY:
    import base64
    import binascii

    try:
        _credentials_key_ok = len(base64.urlsafe_b64decode(CREDENTIALS_KEY.encode())) == 32
    except (binascii.Error, ValueError):
        _credentials_key_ok = False
    if not _credentials_key_ok:
        raise ConfigError(
            "WHARF_CREDENTIALS_KEY: expected a Fernet key (32 bytes in URL-safe base64), e.g. from "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
        )

# External registries: seconds to wait for one answer, how long a V2 catalog stays cached, and the
# overall deadline of a search across every registry of a project (slower registries are named in
# the answer as partial results).
EXTERNAL_REGISTRY_TIMEOUT_SECONDS = env_int("WHARF_EXTERNAL_REGISTRY_TIMEOUT_SECONDS", 10, minimum=1)
EXTERNAL_CATALOG_CACHE_SECONDS = env_int("WHARF_EXTERNAL_CATALOG_CACHE_SECONDS", 60, minimum=0)
try:
    SEARCH_DEADLINE_SECONDS = float(env_str("WHARF_SEARCH_DEADLINE_SECONDS", "5"))
except ValueError:
    raise ConfigError("WHARF_SEARCH_DEADLINE_SECONDS: expected a number of seconds") from None

# Container hosts: how often the beat collects every host's health, facts and containers, and how
# long one host may take to answer a call before it counts as UNREACHABLE (hosts are polled
# concurrently, so one dead host costs a cycle its timeout, never N x timeout).
HOST_COLLECTION_INTERVAL_SECONDS = env_int("WHARF_HOST_COLLECTION_INTERVAL_SECONDS", 60, minimum=1)
HOST_TIMEOUT_SECONDS = env_int("WHARF_HOST_TIMEOUT_SECONDS", 10, minimum=1)
# Each cycle keeps a sample of a host's CPU and memory (its running containers' stats, at most this many
# containers asked per host) for the host page's last-hour chart; older samples are pruned as new ones are written.
HOST_SAMPLE_RETENTION_MINUTES = env_int("WHARF_HOST_SAMPLE_RETENTION_MINUTES", 90, minimum=60)
HOST_SAMPLE_MAX_CONTAINERS = env_int("WHARF_HOST_SAMPLE_MAX_CONTAINERS", 50, minimum=0)

# Background jobs: attempts per job (transient faults are retried with exponential backoff from
# the base delay, capped at the maximum), the lease a running job renews (a job whose lease lapsed
# lost its worker: the beat queues it again), and how many days finished jobs and their logs are kept.
JOB_MAX_ATTEMPTS = env_int("WHARF_JOB_MAX_ATTEMPTS", 5, minimum=1)
JOB_RETRY_DELAY_SECONDS = env_int("WHARF_JOB_RETRY_DELAY_SECONDS", 5, minimum=0)
JOB_RETRY_MAX_DELAY_SECONDS = env_int("WHARF_JOB_RETRY_MAX_DELAY_SECONDS", 600, minimum=0)
JOB_LEASE_SECONDS = env_int("WHARF_JOB_LEASE_SECONDS", 60, minimum=3)
JOB_RETENTION_DAYS = env_int("WHARF_JOB_RETENTION_DAYS", 30, minimum=1)

# Replication: how many repositories of one execution are copied at the same time.
REPLICATION_CONCURRENCY = env_int("WHARF_REPLICATION_CONCURRENCY", 4, minimum=1)

# The vulnerability database's feeds (scanning/updaters/): one URL each, or a comma-separated list for
# the sources published per release (Alpine) or per year (NVD). "off" switches a source off.
# Air-gapped sites load the same files with `manage.py vulndb import`.
OSV_URL = "https://osv-vulnerabilities.storage.googleapis.com"
VULNDB_DEBIAN_URL = env_str("WHARF_VULNDB_DEBIAN_URL", "https://security-tracker.debian.org/tracker/data/json")
VULNDB_UBUNTU_URL = env_str("WHARF_VULNDB_UBUNTU_URL", f"{OSV_URL}/Ubuntu/all.zip")
VULNDB_ALPINE_URLS = env_list(
    "WHARF_VULNDB_ALPINE_URLS",
    [
        f"https://secdb.alpinelinux.org/v{branch}/{repository}.json"
        for branch in ("3.18", "3.19", "3.20", "3.21")
        for repository in ("main", "community")
    ],
)
VULNDB_ALMALINUX_URL = env_str("WHARF_VULNDB_ALMALINUX_URL", f"{OSV_URL}/AlmaLinux/all.zip")
VULNDB_PYPI_URL = env_str("WHARF_VULNDB_PYPI_URL", f"{OSV_URL}/PyPI/all.zip")
VULNDB_NPM_URL = env_str("WHARF_VULNDB_NPM_URL", f"{OSV_URL}/npm/all.zip")
VULNDB_NVD_URLS = env_list(
    "WHARF_VULNDB_NVD_URLS",
    [
        f"https://nvd.nist.gov/feeds/json/cve/2.0/nvdcve-2.0-{year}.json.gz"
        for year in range(2002, datetime.now(UTC).year + 1)
    ],
)
# Seconds to wait for a feed server to answer (and between two chunks of its download).
VULNDB_TIMEOUT_SECONDS = env_int("WHARF_VULNDB_TIMEOUT_SECONDS", 60, minimum=1)
# The largest vulndb bundle or feed file Configuration accepts as an upload (air-gapped sites); NVD alone is ~1 GB.
VULNDB_UPLOAD_MAX_BYTES = env_int("WHARF_VULNDB_UPLOAD_MAX_BYTES", 4 * 1024**3, minimum=1024)

# Clair v4 as a scan backend (scanning/clair.py; the indexer and matcher URLs and the PSK belong to a scanner
# registration). Clair's indexer downloads the layers itself, usually from another machine, so it is given blob URLs
# under this base URL (the registry, or the portal's /v2/ proxy, as Clair reaches it); blank means WHARF_REGISTRY_URL.
CLAIR_REGISTRY_URL = env_str("WHARF_CLAIR_REGISTRY_URL", "").rstrip("/")
# Seconds to wait for one answer of Clair's indexer or matcher.
CLAIR_TIMEOUT_SECONDS = env_int("WHARF_CLAIR_TIMEOUT_SECONDS", 30, minimum=1)
# Seconds Clair may take to index one image (download and read every layer) before the scan fails.
CLAIR_INDEX_DEADLINE_SECONDS = env_int("WHARF_CLAIR_INDEX_DEADLINE_SECONDS", 600, minimum=1)
# How every remote scanner (a Clair or a Harbor adapter registration) reaches the integrated registry to pull the
# image it scans, with a short-lived pull token: blank means WHARF_CLAIR_REGISTRY_URL, then WHARF_REGISTRY_URL.
SCANNER_REGISTRY_URL = env_str("WHARF_SCANNER_REGISTRY_URL", "").rstrip("/")
# Seconds a Harbor scanner adapter may take to make one image's report (302 + Refresh-After) before the scan fails.
SCANNER_REPORT_DEADLINE_SECONDS = env_int("WHARF_SCANNER_REPORT_DEADLINE_SECONDS", 600, minimum=1)

# The Harbor scanner-adapter API (/scanner/api/v1/) pulls images from the registry its caller names. Only public
# addresses may be named, unless an administrator lists networks here (CIDRs, e.g. "10.0.0.0/8,127.0.0.1/32"):
# an adapter must not become a way into the portal's own network.
SCANNER_ADAPTER_ALLOWED_NETWORKS = env_list("WHARF_SCANNER_ADAPTER_ALLOWED_NETWORKS", [])
for _network in SCANNER_ADAPTER_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ConfigError(
            f"WHARF_SCANNER_ADAPTER_ALLOWED_NETWORKS: {_network!r} is not a network (give CIDRs such as 10.0.0.0/8)"
        ) from None
