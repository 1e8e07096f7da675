"""Settings: one flat object, every field documented with its default (pure, no I/O).

Each field can be set by a ``ZAPGATE_<FIELD>`` environment variable (upper case) or, for the most common
ones, by a ``zapgate serve`` flag; flags win over the environment. Unknown ``ZAPGATE_*`` variables and
invalid values fail at start-up with a message naming the variable.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .hosts import HostPolicy
from .origins import OriginPolicy, parse_origin

if TYPE_CHECKING:
    from .netguard import AddressPolicy
    from .storage.base import TenantQuotas

__all__ = ["CLIENT_ENV_VARS", "ENGINES", "FIRST_RUN_TOKEN_MODES", "SECRET_ENV_VARS", "ConfigError", "Settings"]

ENGINES = ("whatsapp", "simulator")
FIRST_RUN_TOKEN_MODES = ("tty", "always", "never")

#: Variables read by the CLI's client commands, not by the server; allowed in the environment.
CLIENT_ENV_VARS = frozenset({"ZAPGATE_TOKEN", "ZAPGATE_URL"})
#: Secrets read once at start-up and never kept in :class:`Settings` (``zapgate.auth.load_admin_token``).
SECRET_ENV_VARS = frozenset({"ZAPGATE_ADMIN_TOKEN"})


class ConfigError(ValueError):
    """An invalid or unknown setting; the message names it and says what is accepted."""


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True, kw_only=True)
class Settings:
    # -- server
    host: str = field(default="127.0.0.1", metadata=_doc("Interface to bind. Loopback by default."))
    port: int = field(default=8787, metadata=_doc("TCP port (0 picks a free one)."))
    data_dir: Path = field(default=Path("zapgate-data"), metadata=_doc("Directory for the database and device keys."))
    engine: str = field(default="whatsapp", metadata=_doc("'whatsapp' (real, via neonize) or 'simulator'."))
    log_level: str = field(default="info", metadata=_doc("debug, info, warning or error."))

    # -- dashboard and browsers
    dashboard: bool = field(default=True, metadata=_doc("Serve the web dashboard at / (static files under /ui/)."))
    allowed_origins: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "Web origins (scheme://host[:port], comma-separated; * for any) whose pages may open the WebSocket, "
            "besides the gateway's own. Clients that send no Origin header are not affected."
        ),
    )
    allowed_hosts: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "Names the gateway answers to, from the Host header (name[:port], *.example.com, or * for any; "
            "comma-separated); other requests get HTTP 421. Empty: localhost, 127.0.0.1 and [::1] (any port) when "
            "host is a loopback address, any name otherwise (defeats DNS rebinding; docs/security.md)."
        ),
    )
    first_run_token: str = field(
        default="tty",
        metadata=_doc(
            "When no token exists, 'zapgate serve' creates one for tenant 'default' and prints it once on stderr: "
            "'tty' only when stderr is a terminal, 'always', or 'never' (docs/security.md)."
        ),
    )

    # -- network edge: before authentication (docs/security.md)
    handshake_timeout_s: float = field(
        default=5.0,
        metadata=_doc("Seconds a new TCP connection has to send its whole request head; then it is dropped (408)."),
    )
    max_header_bytes: int = field(
        default=16384, metadata=_doc("Largest request head (request line and headers); larger is refused (431).")
    )
    max_headers: int = field(default=100, metadata=_doc("Most headers in one request; more is refused (431)."))
    max_connections_per_ip: int = field(
        default=256,
        metadata=_doc("Open connections from one client address, an IPv6 /64 (0: no limit); beyond: HTTP 429."),
    )
    max_unauthenticated_connections: int = field(
        default=512,
        metadata=_doc("Connections not authenticated yet, handshakes included (0: no limit); beyond: HTTP 503."),
    )
    trusted_proxies: tuple[str, ...] = field(
        default=("127.0.0.1", "::1"),
        metadata=_doc(
            "Reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For names the client; "
            "their connections count against the forwarded client's address."
        ),
    )
    auth_timeout_s: float = field(
        default=30.0, metadata=_doc("Seconds a new connection has to authenticate (long enough to paste a token).")
    )
    auth_failure_delay_s: float = field(
        default=0.5,
        metadata=_doc("After a failed authentication, the next attempt from that address waits this long, doubling."),
    )
    auth_failure_max_delay_s: float = field(
        default=30.0, metadata=_doc("Longest wait imposed on an address whose authentications keep failing.")
    )

    # -- tenants, tokens and the audit log (docs/security.md)
    admin_token_file: Path | None = field(
        default=None,
        metadata=_doc(
            "A file (mode 600) whose first line is the admin token: a secret of at least 32 characters and 128 bits "
            "(openssl rand -hex 32). ZAPGATE_ADMIN_TOKEN gives it directly instead. Weak or readable by others: the "
            "gateway does not start."
        ),
    )
    tenant_max_sessions: int = field(
        default=100, metadata=_doc("Sessions a tenant may have, unless its own quota says otherwise (0: no limit).")
    )
    tenant_max_queued_messages: int = field(
        default=10000,
        metadata=_doc(
            "Messages a tenant may have waiting to be sent, unless its own quota says otherwise (0: no limit)."
        ),
    )
    tenant_max_queued_bytes: int = field(
        default=64 * 1024 * 1024,
        metadata=_doc(
            "Bytes of messages (stored content, not media files) a tenant may have waiting to be sent, unless its "
            "own quota says otherwise (0: no limit)."
        ),
    )
    audit_retention_s: float = field(
        default=90 * 86400.0, metadata=_doc("How long audit log entries are kept (docs/security.md).")
    )

    # -- network edge: authenticated connections
    max_connections_per_token: int = field(
        default=64, metadata=_doc("Open connections with one token; beyond: HTTP 429 or close 4409. 0: no limit.")
    )
    max_frame_bytes: int = field(default=65536, metadata=_doc("Largest accepted frame; larger closes 1009."))
    send_buffer_frames: int = field(
        default=4000,
        metadata=_doc("Frames queued for one client; events use at most half (see send_buffer_bytes)."),
    )
    send_buffer_bytes: int = field(
        default=4 * 1024 * 1024,
        metadata=_doc(
            "Bytes queued for one client. Events beyond half of it are read from the log later; a reply "
            "beyond it closes the connection (4429)."
        ),
    )
    send_timeout_s: float = field(
        default=30.0,
        metadata=_doc("A client that takes no frame for this long while frames wait for it is closed (4429)."),
    )
    close_timeout_s: float = field(
        default=5.0, metadata=_doc("Seconds a closing connection has to take its close frame; then it is cut.")
    )
    max_inflight_commands: int = field(
        default=64, metadata=_doc("Commands one connection may have in progress; beyond it reading pauses.")
    )
    command_rate_per_s: float = field(
        default=50.0,
        metadata=_doc(
            "Commands per second one connection may send on average, and REST requests one token may make (per "
            "node); beyond: 'rate_limited' (REST: 429). Pings count in a bucket of their own; a ping flood closes "
            "1008. 0: no limit."
        ),
    )
    command_burst: int = field(
        default=200,
        metadata=_doc("Commands one connection (REST: requests one token) may send at once above command_rate_per_s."),
    )
    ping_interval_s: float = field(default=20.0, metadata=_doc("WebSocket ping interval (0 disables)."))
    ping_timeout_s: float = field(default=20.0, metadata=_doc("Close a client that does not answer a ping."))

    # -- metrics
    metrics_token: str = field(
        default="",
        metadata=_doc(
            "When set, GET /metrics needs 'Authorization: Bearer <this>' (at least 24 characters, 12 of them "
            "different; a weak value stops the start-up). Empty: /metrics is open to whoever reaches it."
        ),
    )
    metrics_port: int = field(
        default=0,
        metadata=_doc("When set, /metrics is served on this port of metrics_host only, not on the API's port (0)."),
    )
    metrics_host: str = field(
        default="127.0.0.1", metadata=_doc("Interface of the separate /metrics listener (with metrics_port).")
    )

    # -- REST
    rest_max_body_bytes: int = field(
        default=1048576, metadata=_doc("Largest accepted REST request body; larger is refused with 413.")
    )
    rest_max_wait_s: float = field(
        default=30.0, metadata=_doc("Longest long-poll a client may ask for with GET /v1/events?wait=S.")
    )
    sse_heartbeat_s: float = field(
        default=15.0, metadata=_doc("Seconds between keep-alive comments on an idle Server-Sent Events stream.")
    )
    cors_origins: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "Browser origins allowed to call the REST API (CORS): exact origins, comma-separated "
            "(https://app.example.com); none by default."
        ),
    )

    # -- sends
    send_wait_s: float = field(
        default=2.0, metadata=_doc("How long message.send waits for WhatsApp before replying 'queued'.")
    )
    idempotency_ttl_s: float = field(default=86400.0, metadata=_doc("How long idempotency keys are kept."))
    send_concurrency: int = field(
        default=8,
        metadata=_doc(
            "Chats of one session sent to at once (1 to 64); a chat's own messages always go one at a time, in order."
        ),
    )
    pacing: bool = field(default=True, metadata=_doc("Anti-ban pacing of outgoing messages."))
    pacing_interval_s: float = field(default=1.0, metadata=_doc("Minimum seconds between two sends of a session."))
    pacing_jitter_s: float = field(default=1.0, metadata=_doc("Random extra delay, 0 to this, added per send."))
    pacing_recipient_interval_s: float = field(
        default=3.0, metadata=_doc("Minimum seconds between two sends to the same chat.")
    )
    pacing_new_contacts_per_day: int = field(
        default=30, metadata=_doc("First messages to new contacts allowed per session per rolling 24 h.")
    )

    # -- events
    event_retention_s: float = field(
        default=86400.0, metadata=_doc("Events younger than this are always kept for resume.")
    )
    event_retention_count: int = field(
        default=100000, metadata=_doc("The newest this many events per tenant are always kept for resume.")
    )

    # -- storage
    database_url: str = field(
        default="",
        metadata=_doc(
            "Where the gateway's state lives: empty for SQLite in the data directory, sqlite:///PATH, or "
            "postgresql://USER@HOST:PORT/DB for several nodes sharing one database."
        ),
    )
    sqlite_synchronous: str = field(
        default="full", metadata=_doc("SQLite 'full' (fsync every commit) or 'normal' (survives process crash).")
    )
    media_dir: Path | None = field(
        default=None,
        metadata=_doc(
            "Where media files are kept; nodes of a cluster mount one shared directory here. Empty: <data_dir>/media."
        ),
    )

    # -- several nodes (docs/scaling.md); used when database_url is PostgreSQL
    node_name: str = field(
        default="", metadata=_doc("This node's name in /healthz, /metrics and logs. Empty: the host name.")
    )
    bus_url: str = field(
        default="",
        metadata=_doc(
            "How the nodes of a cluster signal new events and forward commands to each other: redis://HOST:PORT/DB, "
            "or empty for PostgreSQL LISTEN/NOTIFY on the database itself."
        ),
    )
    lease_ttl_s: float = field(
        default=10.0,
        metadata=_doc("A node that stops renewing its sessions' leases loses them after this long; others take over."),
    )
    lease_renew_s: float = field(
        default=2.0, metadata=_doc("How often a node renews its leases and looks for sessions without a node.")
    )
    node_max_sessions: int = field(
        default=0, metadata=_doc("Most sessions one node runs (0: no limit beyond an even share).")
    )
    forward_timeout_s: float = field(
        default=10.0,
        metadata=_doc(
            "How long a node waits for the node that runs a session to answer a command forwarded to it, or for a "
            "session without a node to get one, before answering session_unavailable."
        ),
    )

    # -- media (docs/media.md)
    media_max_bytes: int = field(
        default=100 * 1024 * 1024,
        metadata=_doc(
            "Largest file the gateway stores: an upload (larger answers 413 as soon as it is exceeded), a file "
            "fetched from a URL, a received file."
        ),
    )
    media_retention_s: float = field(
        default=604800.0,
        metadata=_doc(
            "Media not used for this long are deleted (a file waiting in a queued message is kept); 0 keeps them."
        ),
    )
    media_fetch_timeout_s: float = field(
        default=30.0, metadata=_doc("Longest a media URL may take to fetch, from connecting to the last byte.")
    )
    media_download_concurrency: int = field(
        default=4, metadata=_doc("Received files downloaded at the same time (shared fairly between tenants).")
    )
    media_download_timeout_s: float = field(
        default=300.0, metadata=_doc("Longest one download of a received file may take before it counts as failed.")
    )
    media_download_attempts: int = field(
        default=6,
        metadata=_doc(
            "Automatic attempts to download a received file before it stays failed (media.retry tries again)."
        ),
    )
    media_retry_base_s: float = field(
        default=5.0,
        metadata=_doc(
            "Delay before the first automatic retry of a failed download; it doubles each time, up to 15 min."
        ),
    )

    # -- outbound requests (media URLs, webhooks)
    outbound_allow: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "Networks (CIDR, comma-separated) that outbound requests (webhooks, media URLs) may reach although they "
            "are not public, e.g. 10.0.0.0/8 or 127.0.0.1/32. Empty: public addresses only."
        ),
    )

    # -- webhooks (docs/webhooks.md)
    webhook_max_per_tenant: int = field(default=100, metadata=_doc("Most webhook endpoints one tenant may have."))
    webhook_timeout_s: float = field(
        default=15.0,
        metadata=_doc("Longest one delivery attempt may take, from connecting to the end of the response."),
    )
    webhook_connect_timeout_s: float = field(
        default=5.0, metadata=_doc("Longest connecting to a webhook endpoint may take (part of webhook_timeout_s).")
    )
    webhook_max_response_bytes: int = field(
        default=65536,
        metadata=_doc("Most bytes of a receiver's response the gateway reads; it stops there (the status counts)."),
    )
    webhook_retry_schedule: tuple[float, ...] = field(
        default=(5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 28800.0, 28800.0),
        metadata=_doc(
            "Seconds before each retry of an event a receiver did not accept (each varied by up to 10% either way); "
            "after the last, the event becomes a dead letter. The default spans about 32 h."
        ),
    )
    webhook_disable_after_s: float = field(
        default=86400.0,
        metadata=_doc("An endpoint whose every attempt failed for this long is disabled (0: never)."),
    )
    webhook_secret_grace_s: float = field(
        default=86400.0, metadata=_doc("After a secret rotation, how long the previous secret keeps signing too.")
    )

    # -- simulator engine
    sim_qr_schedule: tuple[float, ...] = field(
        default=(60.0, 20.0, 20.0, 20.0, 20.0, 20.0),
        metadata=_doc("Lifetime in seconds of each QR code, comma-separated, as WhatsApp does."),
    )
    sim_latency_s: float = field(
        default=0.2,
        metadata=_doc("Simulated network delay: of a send's acknowledgement, receipts and the echo contact's reply."),
    )
    sim_contacts: tuple[str, ...] = field(
        default=(), metadata=_doc("Extra phone numbers that exist on the simulated network (comma-separated).")
    )
    sim_history_messages: int = field(
        default=0,
        metadata=_doc(
            "Made-up earlier messages with the echo contact and sim_contacts that a newly paired device gets in "
            "WhatsApp's history sync, besides the account's real prior conversations."
        ),
    )

    # -- whatsapp engine
    wa_sessions_per_worker: int = field(
        default=100, metadata=_doc("Sessions one engine worker process hosts before another is started.")
    )
    wa_connect_attempts: int = field(
        default=8, metadata=_doc("Initial connection attempts before a session is 'failed'.")
    )
    wa_connect_backoff_s: float = field(
        default=2.0, metadata=_doc("Base of the capped (60 s) exponential backoff with full jitter between attempts.")
    )
    wa_failed_retry_s: float = field(
        default=300.0,
        metadata=_doc("A paired session that failed for a passing cause (offline) is retried after this (0: never)."),
    )
    wa_heartbeat_s: float = field(default=5.0, metadata=_doc("How often the gateway pings each engine worker."))
    wa_heartbeat_timeout_s: float = field(
        default=30.0, metadata=_doc("An engine worker silent for this long is killed and restarted.")
    )
    wa_worker_restarts: int = field(
        default=5, metadata=_doc("Consecutive quick crashes of an engine worker before its sessions are 'failed'.")
    )
    wa_proxy: str = field(
        default="",
        metadata=_doc(
            "Proxy for every connection to WhatsApp (http://, https:// or socks5://host:port); empty: none, or "
            "HTTPS_PROXY from the environment."
        ),
    )
    wa_device_name: str = field(
        default="zapgate", metadata=_doc("Name the phone shows under Linked devices (the same for every session).")
    )
    wa_connect_timeout_s: float = field(
        default=90.0,
        metadata=_doc("A paired session not connected this long after pairing or a connect is reconnected."),
    )
    wa_reconnect_timeout_s: float = field(
        default=900.0,
        metadata=_doc("A session whatsmeow has been reconnecting this long is reconnected afresh (0: never)."),
    )

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "zapgate.db"

    @property
    def storage_url(self) -> str:
        """``database_url``, or the SQLite file in the data directory when it is empty."""
        return self.database_url or f"sqlite:///{self.database_path}"

    @property
    def media_path(self) -> Path:
        return self.media_dir if self.media_dir is not None else self.data_dir / "media"

    @property
    def host_policy(self) -> HostPolicy:
        """The ``Host`` names the gateway answers to (:mod:`zapgate.hosts`): ``allowed_hosts``, or the default for
        the address it listens on."""
        if self.allowed_hosts:
            return HostPolicy.of(self.allowed_hosts)
        return HostPolicy.default_for(is_loopback(self.host))

    @property
    def outbound_policy(self) -> AddressPolicy:
        """Where outbound requests may connect (:mod:`zapgate.netguard`)."""
        from .netguard import AddressPolicy

        return AddressPolicy.parse(self.outbound_allow)

    @property
    def clustered(self) -> bool:
        """True when the state is in PostgreSQL: the node then runs only the sessions it holds a lease for."""
        return self.database_url.partition("://")[0] in {"postgresql", "postgres"}

    @functools.cached_property
    def tenant_quotas(self) -> TenantQuotas:
        """The default quotas of every tenant (a tenant's own quotas replace them one by one). Built once: every
        ``message.send`` reads them (2.2 µs a build, ``bench/findings.md``, round 23)."""
        from .storage.base import TenantQuotas

        return TenantQuotas(self.tenant_max_sessions, self.tenant_max_queued_messages, self.tenant_max_queued_bytes)

    @property
    def lock_hold_limit_s(self) -> float | None:
        """In a cluster: how long a node's write transaction may sit idle before PostgreSQL ends it (a quarter of
        a lease, at least a second), so that a paused node cannot stall the others' writes for long."""
        return max(1.0, self.lease_ttl_s / 4) if self.clustered else None

    @classmethod
    def load(cls, env: Mapping[str, str], **overrides: Any) -> Settings:
        """Build settings from ``ZAPGATE_*`` variables in ``env``, then apply non-None ``overrides``."""
        known = {f"ZAPGATE_{f.name.upper()}": f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in env.items():
            if not key.startswith("ZAPGATE_") or key in CLIENT_ENV_VARS or key in SECRET_ENV_VARS:
                continue
            if key not in known:
                raise ConfigError(f"unknown setting {key}; known settings: {', '.join(sorted(known))}")
            f = known[key]
            values[f.name] = _parse(key, f, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(variable, default, documentation) for every setting, for docs and ``--help``."""
        rows = []
        for f in fields(cls):
            default = f.default
            shown = (
                ",".join(f"{v:g}" if isinstance(v, float) else v for v in default)
                if isinstance(default, tuple)
                else ""
                if default is None
                else str(default)
            )
            rows.append((f"ZAPGATE_{f.name.upper()}", shown, f.metadata.get("doc", "")))
        return rows

    @classmethod
    def markdown_table(cls) -> str:
        """The settings table of ``docs/configuration.md`` (``python3 tasks.py docs`` writes it there)."""
        lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
        for variable, default, doc in cls.describe():
            escaped = doc.replace("|", "\\|")
            lines.append(f"| `{variable}` | `{default}` | {escaped} |")
        return "\n".join(lines) + "\n"


def _parse(key: str, f: dataclasses.Field[Any], raw: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    raw = raw.strip()
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            lowered = raw.lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if kind == "Path":
            return Path(raw)
        if kind == "Path | None":
            return Path(raw) if raw else None
        if kind == "tuple[float, ...]":
            return tuple(float(part) for part in raw.split(",") if part.strip())
        if kind == "tuple[str, ...]":
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a valid {kind}") from None


def _validate(s: Settings) -> None:
    if s.engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, not {s.engine!r}")
    if not 0 <= s.port <= 65535:
        raise ConfigError(f"port must be between 0 and 65535, not {s.port}")
    if s.log_level.lower() not in {"debug", "info", "warning", "error"}:
        raise ConfigError(f"log_level must be debug, info, warning or error, not {s.log_level!r}")
    if s.database_url and s.database_url.partition("://")[0] not in {"sqlite", "postgresql", "postgres"}:
        raise ConfigError("database_url must start with sqlite:/// or postgresql://")
    if s.first_run_token not in FIRST_RUN_TOKEN_MODES:
        modes = ", ".join(FIRST_RUN_TOKEN_MODES)
        raise ConfigError(f"first_run_token must be one of {modes}, not {s.first_run_token!r}")
    try:
        OriginPolicy.of(s.allowed_origins)
    except ValueError as exc:
        raise ConfigError(f"allowed_origins: {exc}") from None
    try:
        HostPolicy.of(s.allowed_hosts)
    except ValueError as exc:
        raise ConfigError(f"allowed_hosts: {exc}") from None
    if s.metrics_token:
        weakness = secret_weakness(s.metrics_token)
        if weakness:
            raise ConfigError(f"metrics_token is too weak: {weakness}; generate one with 'openssl rand -hex 24'")
    if not 0 <= s.metrics_port <= 65535:
        raise ConfigError(f"metrics_port must be between 0 and 65535, not {s.metrics_port}")
    if s.bus_url and s.bus_url.partition("://")[0] not in {"redis", "rediss", "postgresql", "postgres"}:
        raise ConfigError("bus_url must start with redis:// (or postgresql://), or be empty")
    if s.lease_renew_s * 3 > s.lease_ttl_s:
        raise ConfigError(
            f"lease_renew_s ({s.lease_renew_s:g}) must be at most a third of lease_ttl_s ({s.lease_ttl_s:g}): a node "
            "must be able to miss a renewal without losing its sessions"
        )
    if s.sqlite_synchronous not in {"full", "normal"}:
        raise ConfigError(f"sqlite_synchronous must be 'full' or 'normal', not {s.sqlite_synchronous!r}")
    for network in s.outbound_allow:
        try:
            ipaddress.ip_network(network.strip(), strict=False)
        except ValueError:
            raise ConfigError(
                f"outbound_allow must be networks in CIDR form (10.0.0.0/8, 127.0.0.1/32), not {network!r}"
            ) from None
    if not s.webhook_retry_schedule or any(t <= 0 for t in s.webhook_retry_schedule):
        raise ConfigError("webhook_retry_schedule needs at least one positive delay in seconds")
    if not s.sim_qr_schedule or any(t <= 0 for t in s.sim_qr_schedule):
        raise ConfigError("sim_qr_schedule needs at least one positive lifetime in seconds")
    for origin in s.cors_origins:
        if parse_origin(origin) is None or "*" in origin:
            raise ConfigError(
                f"cors_origins: {origin!r} is not an origin; give exact origins like https://app.example.com or "
                "http://localhost:3000 (scheme, host and optional port; no path, no wildcard)"
            )
    if s.rest_max_body_bytes < 1024:
        raise ConfigError("rest_max_body_bytes must be at least 1024")
    if s.max_frame_bytes < 1024:
        raise ConfigError("max_frame_bytes must be at least 1024")
    if s.max_header_bytes < 1024:
        raise ConfigError("max_header_bytes must be at least 1024")
    if s.max_headers < 16:
        raise ConfigError("max_headers must be at least 16 (a WebSocket upgrade needs several)")
    if s.send_buffer_bytes < 65536:
        raise ConfigError("send_buffer_bytes must be at least 65536")
    if not 1 <= s.send_concurrency <= 64:
        raise ConfigError("send_concurrency must be between 1 and 64")
    if s.command_burst < 1:
        raise ConfigError("command_burst must be at least 1")
    if s.auth_failure_max_delay_s < s.auth_failure_delay_s:
        raise ConfigError("auth_failure_max_delay_s must not be less than auth_failure_delay_s")
    for proxy in s.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(f"trusted_proxies: {proxy!r} is not an IP address or network") from None
    positive = {
        "auth_timeout_s": s.auth_timeout_s,
        "handshake_timeout_s": s.handshake_timeout_s,
        "send_timeout_s": s.send_timeout_s,
        "close_timeout_s": s.close_timeout_s,
        "auth_failure_delay_s": s.auth_failure_delay_s,
        "sse_heartbeat_s": s.sse_heartbeat_s,
        "send_buffer_frames": s.send_buffer_frames,
        # At least the newest event must stay: seq numbers restart from the newest stored one after a restart.
        "event_retention_count": s.event_retention_count,
        "max_inflight_commands": s.max_inflight_commands,
        "wa_sessions_per_worker": s.wa_sessions_per_worker,
        "wa_connect_attempts": s.wa_connect_attempts,
        "wa_connect_backoff_s": s.wa_connect_backoff_s,
        "wa_heartbeat_s": s.wa_heartbeat_s,
        "wa_heartbeat_timeout_s": s.wa_heartbeat_timeout_s,
        "wa_connect_timeout_s": s.wa_connect_timeout_s,
        "media_max_bytes": s.media_max_bytes,
        "media_fetch_timeout_s": s.media_fetch_timeout_s,
        "media_download_concurrency": s.media_download_concurrency,
        "media_download_timeout_s": s.media_download_timeout_s,
        "media_download_attempts": s.media_download_attempts,
        "media_retry_base_s": s.media_retry_base_s,
        "lease_ttl_s": s.lease_ttl_s,
        "audit_retention_s": s.audit_retention_s,
        "lease_renew_s": s.lease_renew_s,
        "forward_timeout_s": s.forward_timeout_s,
        "webhook_timeout_s": s.webhook_timeout_s,
        "webhook_connect_timeout_s": s.webhook_connect_timeout_s,
        "webhook_max_response_bytes": s.webhook_max_response_bytes,
    }
    for name, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{name} must be positive, not {value}")
    non_negative = {
        "max_connections_per_ip": s.max_connections_per_ip,
        "max_unauthenticated_connections": s.max_unauthenticated_connections,
        "max_connections_per_token": s.max_connections_per_token,
        "command_rate_per_s": s.command_rate_per_s,
        "send_wait_s": s.send_wait_s,
        "rest_max_wait_s": s.rest_max_wait_s,
        "pacing_interval_s": s.pacing_interval_s,
        "pacing_jitter_s": s.pacing_jitter_s,
        "pacing_recipient_interval_s": s.pacing_recipient_interval_s,
        "pacing_new_contacts_per_day": s.pacing_new_contacts_per_day,
        "sim_latency_s": s.sim_latency_s,
        "sim_history_messages": s.sim_history_messages,
        "ping_interval_s": s.ping_interval_s,
        "ping_timeout_s": s.ping_timeout_s,
        "wa_failed_retry_s": s.wa_failed_retry_s,
        "wa_worker_restarts": s.wa_worker_restarts,
        "wa_reconnect_timeout_s": s.wa_reconnect_timeout_s,
        "media_retention_s": s.media_retention_s,
        "node_max_sessions": s.node_max_sessions,
        "tenant_max_sessions": s.tenant_max_sessions,
        "tenant_max_queued_messages": s.tenant_max_queued_messages,
        "tenant_max_queued_bytes": s.tenant_max_queued_bytes,
        "webhook_max_per_tenant": s.webhook_max_per_tenant,
        "webhook_disable_after_s": s.webhook_disable_after_s,
        "webhook_secret_grace_s": s.webhook_secret_grace_s,
    }
    for name, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"{name} must not be negative, not {value}")
    if s.wa_proxy:
        _check_proxy(s.wa_proxy)
    if not s.wa_device_name.strip() or len(s.wa_device_name) > MAX_DEVICE_NAME or not s.wa_device_name.isprintable():
        raise ConfigError(
            f"wa_device_name must be 1 to {MAX_DEVICE_NAME} printable characters, not {s.wa_device_name!r}"
        )


MIN_SECRET_CHARS = 24
"""Shortest secret a setting accepts (``metrics_token``)."""
MIN_SECRET_DISTINCT = 12
"""Fewest different characters in such a secret: ``aaaa…`` or ``1212…`` are refused whatever their length."""


def secret_weakness(secret: str) -> str:
    """Why ``secret`` is too weak to guard anything ('' when it is strong enough); never quotes the secret."""
    if len(secret) < MIN_SECRET_CHARS:
        return f"it has {len(secret)} characters, fewer than {MIN_SECRET_CHARS}"
    if len(set(secret)) < MIN_SECRET_DISTINCT:
        return f"it has fewer than {MIN_SECRET_DISTINCT} different characters"
    if not secret.isprintable() or secret != secret.strip():
        return "it has spaces at its ends or characters that cannot be printed"
    return ""


MAX_DEVICE_NAME = 64
"""Longest ``wa_device_name``; the phone's list of linked devices shows it."""


def _check_proxy(url: str) -> None:
    """Accept what whatsmeow accepts: ``http``, ``https`` or ``socks5`` with a host and a port."""
    parsed = urlsplit(url)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme not in {"http", "https", "socks5"} or not parsed.hostname or port is None:
        raise ConfigError(
            "wa_proxy must be a URL like http://proxy.example:3128 or socks5://127.0.0.1:1080 "
            f"(scheme http, https or socks5, with a host and a port), not {redact_url(url)!r}"
        )


def redact_url(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parsed = urlsplit(url)
    credentials, at, host = parsed.netloc.rpartition("@")
    if not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return urlunsplit(parsed._replace(netloc=f"{user}:***@{host}"))


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
