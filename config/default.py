"""Safe, secret-free defaults. Every name can be overridden by a `BRIDGE_<NAME>` environment
variable (or `instance/config.py`). Secrets have no default: start-up fails until they are set."""

# Where KooGallery calls us: the "production address" is {PUBLIC_URL}{PRODUCE_PATH}; kit calls
# arrive at {PRODUCE_PATH}/produceAPI/v2/<interface>.
PRODUCE_PATH = "/produce"

# The bridge's external base URL (https://bridge.example.com): the OIDC issuer, the callback URL
# sent to authentication centres, the frontEndUrl returned by queryInstance. Required in production
# (start-up fails without it); in tests and local development the URL a request came in on is used.
PUBLIC_URL = None

# Local development on http://127.0.0.1 (`python -m config.generate --local`, `make run`): the bridge
# may start without an https PUBLIC_URL. Production is every start that is neither TESTING nor
# LOCAL_DEV. Never set this on a server others can reach.
LOCAL_DEV = False

# SQLAlchemy URL. None means SQLite in the instance folder (instance/bridge.sqlite).
DATABASE_URL = None
# DATABASE_URL points at PgBouncer in transaction-pooling mode (docs/scale-out.md): each
# transaction may run on another server connection, so psycopg's server-side prepared statements
# are turned off (prepare_threshold=None). The bridge keeps no other session state (no SET, no
# session advisory locks, no LISTEN, no temporary tables). Ignored for SQLite.
DATABASE_PGBOUNCER = False

# Signed-call checks (spec §3.2): accepted clock difference, and how long a nonce is remembered.
# A nonce must outlive the window on both sides, so it can never be replayed inside it.
SIGNATURE_WINDOW_SECONDS = 60
NONCE_TTL_SECONDS = 300

# Bad-input limits for sync calls.
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_JSON_DEPTH = 32
MAX_AUTH_SYNC_USERS = 500

# Add the V1-style `Body-Sign` header to every sync answer (harmless for V2, spec §3.4/§11 U3).
BODY_SIGN = True

# Allow http:// and private/loopback authentication-centre hosts in tenantSync.domainName and on
# connect (common/addresses.py is then skipped). Only for the local simulator; never in production.
# To reach one internal network in production use IDP_ALLOWED_NETWORKS instead.
ALLOW_INSECURE_IDP = False

# RSA private key that decrypts applicationSync.clientSecret (`flask keys generate` writes it).
# A relative path is resolved inside the instance folder.
RSA_PRIVATE_KEY_FILE = "koogallery_rsa.pem"

# Keys accepted during rotation, besides the current ones (lists, or comma-separated strings).
KIT_ACCESS_KEY_FALLBACKS = []
BASIC_ACCESS_KEY_FALLBACKS = []

# How many rows `flask sync log` prints by default; request bodies kept in the audit are cut here.
AUDIT_BODY_MAX_CHARS = 256 * 1024

LOG_LEVEL = "INFO"

# --- browser login (sso/) -----------------------------------------------------------------------

# A code that arrives without state (workbench launch, unified portal) cannot prove this browser
# asked for it. "reinitiate" keeps it (encrypted, in the flow cookie, for its short life) and
# restarts a state-bound authorize; when the centre cannot answer that silently (an error, or no
# state again), the kept code is exchanged and the person confirms with one click that names the
# account and company. "confirm" always asks that click; "direct" exchanges without asking (login
# CSRF possible: local use only). See SECURITY.md.
WORKBENCH_LOGIN = "reinitiate"

# KooGallery's unified login portal, and the appId of the application credential (spec §6.1 A).
PORTAL_LOGIN_URL = "https://macroverse.huaweicloud.com/unified-login/#/portal-login"
APP_ID = None

# Admit users of tenants whose authSync has not arrived yet (identity from userinfo alone).
JIT_USERS = False

# Authorize requests: scope, and PKCE (S256) on every bridge-started login.
IDP_SCOPE = "get_user_info"
IDP_USE_PKCE = True
# Outbound calls to authentication centres: seconds, and pooled connections per host.
IDP_CONNECT_TIMEOUT = 3
IDP_READ_TIMEOUT = 5
IDP_POOL_SIZE = 10
# Every call to an authentication centre ends within this many seconds, connect and all reads included.
IDP_TOTAL_TIMEOUT = 5
# Largest answer read from an authentication centre, counted after decompression (bytes).
IDP_MAX_RESPONSE_BYTES = 64 * 1024
# Calls in flight to one tenant's centre, per bridge process; more are refused at once (idp_busy).
IDP_MAX_CONCURRENT_PER_TENANT = 4
# Consecutive failures (timeouts, unreachable, 5xx, garbage) after which a centre host is not called ...
IDP_CIRCUIT_FAILURES = 5
# ... for this many seconds; then one trial call decides (idp_circuit_open meanwhile).
IDP_CIRCUIT_COOLDOWN_SECONDS = 30
# Non-public networks (CIDRs) authentication centres may be in, e.g. ["100.64.0.0/10"] for Huawei Cloud internal.
IDP_ALLOWED_NETWORKS = []

# Sessions: idle and absolute lifetimes; refresh the IdP access token this long before it expires.
SESSION_IDLE_MINUTES = 60
SESSION_ABSOLUTE_HOURS = 12
ACCESS_TOKEN_REFRESH_MARGIN_SECONDS = 300
LOGIN_STATE_TTL_SECONDS = 600

# Cookies are Secure (HTTPS only) outside local development.
COOKIE_SECURE = True
SESSION_COOKIE_NAME = "bridge_flow"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# Pages: Simplified Chinese first, English available.
LANGUAGES = ["zh", "en"]

# --- OpenID Connect provider (sso/oidc) ----------------------------------------------------------

OIDC_ID_TOKEN_LIFETIME = 3600
OIDC_ACCESS_TOKEN_LIFETIME = 3600
OIDC_REFRESH_TOKEN_LIFETIME = 30 * 86400
# The app a workbench launch lands in (client_id). Unset: the only app with an initiate-login
# URI, if there is exactly one; otherwise the bridge's own page lists the apps.
OIDC_LANDING_APP = None
# Back-channel logout: delivered by a background thread in each bridge process ("thread"), or
# only by `flask apps deliver-logouts` from cron ("cron").
OIDC_BACKCHANNEL_DELIVERY = "thread"
OIDC_BACKCHANNEL_MAX_ATTEMPTS = 10
OIDC_BACKCHANNEL_TIMEOUT = 5

# --- operation (ops/) ------------------------------------------------------------------------------

# Number of reverse proxies in front of the bridge whose X-Forwarded-* headers are trusted (0: none).
PROXY_HOPS = 0
# /metrics requires `Authorization: Bearer <METRICS_TOKEN>`; without a token it answers 401, unless
# the operator opts out with METRICS_PUBLIC = True (e.g. scraped only on a private interface).
METRICS_TOKEN = None
METRICS_PUBLIC = False
# `flask maintenance run`: how long ended sessions, delivered logouts and audit rows are kept.
SESSION_RETENTION_DAYS = 30
AUDIT_RETENTION_DAYS = 180
# Rows `flask maintenance run` deletes per transaction: small enough that no batch holds locks long.
MAINTENANCE_BATCH_SIZE = 500
# Pause between two full batches: a long first run takes the database's time in turns with the syncs.
MAINTENANCE_BATCH_PAUSE_MS = 50
# The most of its time a run spends deleting (1-100): after a batch that took t it waits at least
# t × (100 / percent − 1), so a year's backlog leaves the syncs their share of the database's CPU
# (bench/README.md: 25 % and 2,000-row batches raised a loaded tenantSync's p99 by 86 %, 10 % and 500 by 24 %).
MAINTENANCE_BUSY_PERCENT = 10

# --- operator console (admin/) ---------------------------------------------------------------------

ADMIN_SESSION_IDLE_MINUTES = 30
ADMIN_SESSION_ABSOLUTE_HOURS = 8
ADMIN_PAGE_SIZE = 50
ADMIN_PASSWORD_HASH_METHOD = "scrypt"
ADMIN_TOTP_ISSUER = "SSO Bridge"
# The IANA zone the console shows times in (stored in UTC); its name is shown beside them.
ADMIN_TIMEZONE = "Asia/Shanghai"

# --- marketplace behaviour (tenants/) -------------------------------------------------------------

# The product's numeric attribute (productInfo.linearValue) counts users: changeInstanceCheck refuses
# fewer seats than the users already authorised, and admission refuses users beyond the seats bought.
SEATS_FROM_LINEAR_VALUE = False
# How long a released instance's users, departments and sessions are kept before `flask maintenance
# run` purges them (the marketplace asks that a frozen instance's data be kept 15 days).
RELEASED_DATA_RETENTION_DAYS = 15

# userinfo `tenant` is documented as the enterprise's domainId: "tenant_id" admits only the
# callback's tenantId; "tenant_code" also accepts the tenant's tenantCode; "domain_id" also accepts
# the domainId the operator recorded for the tenant (`flask tenants set-domain-id`). A userinfo without
# `tenant` is refused unless USERINFO_TENANT_OPTIONAL is on.
USERINFO_TENANT_MATCH = "tenant_id"
USERINFO_TENANT_OPTIONAL = False

# Open login states (one per login started, anonymous) are capped per client address and in total.
LOGIN_STATES_PER_CLIENT = 20
LOGIN_STATES_TOTAL = 100_000
# Re-initiated workbench logins ask the centre to answer without a page (prompt=none). The centre
# documents no `prompt`; one that refuses it sends an error, and the bridge falls back to asking.
IDP_PROMPT_NONE = True
# A workbench/portal code was issued for the registered login address: the token request leaves
# redirect_uri out ("omit") unless the centre insists on it ("send").
IDP_WORKBENCH_REDIRECT_URI = "omit"
# How long a held sign-in (workbench confirmation, account switch) waits for the person's click.
HELD_SIGN_IN_SECONDS = 300

# --- rate limits on the anonymous login routes (sso/ratelimit.py) ---------------------------------

# Requests per client address (IPv6: per /64) per fixed window, counted in the database so every
# worker and server shares the count. "login": GET /sso/login?tenant=|instance= and POST /sso/login;
# "callback": GET /sso/callback. 0 turns a limit off. Over it: a 429 page with Retry-After.
RATE_LIMIT_WINDOW_SECONDS = 60
RATE_LIMIT_LOGIN = 30
RATE_LIMIT_CALLBACK = 30
# At most this many clients get their own row per route group and window; every further client
# shares one overflow counter, limited to RATE_LIMIT_OVERFLOW requests per window in total.
RATE_LIMIT_MAX_CLIENTS = 10000
RATE_LIMIT_OVERFLOW = 3000

# PostgreSQL: a statement waiting this long for a lock, or running this long, is cancelled, so a
# sync call answers 000005 (and KooGallery retries) well inside the marketplace's 5 s limit instead
# of hanging. Milliseconds; 0 turns one off. Set with SET LOCAL at the start of every transaction,
# which also works through PgBouncer in transaction mode. Ignored for SQLite.
DATABASE_LOCK_TIMEOUT_MS = 2000
DATABASE_STATEMENT_TIMEOUT_MS = 4000

# --- branding (the pages people sign in through) ---------------------------------------------------

# What the login, refusal, confirmation and signed-out pages (and the console's title) say the person
# is signing in to. Empty: the pages say "企业账号登录 / Enterprise sign-in" and show no vendor.
BRAND_APP_NAME = ""
BRAND_VENDOR_NAME = ""
# The logo in the page header: an https:// URL (its origin is added to the pages' img-src), a data:
# URI, or the name of an image file in the instance folder (served by the bridge at /sso/brand/logo).
BRAND_LOGO = ""
# Where people get help: an e-mail address (shown as a mailto: link), an https:// URL, or plain text
# such as a phone number. Shown in the footer and on refusal pages.
BRAND_SUPPORT = ""
# The ICP filing number (ICP备案号) shown in the footer, linked to https://beian.miit.gov.cn/.
BRAND_ICP = ""
