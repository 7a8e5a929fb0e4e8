"""Settings: config/settings.yaml, then CC_* environment overrides, validated."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"

# Short names for the most used overrides; anything else is CC_<SECTION>__<KEY>.
ENV_ALIASES = {
    "CC_DATABASE_URL": ("database", "url"),
    "CC_DATABASE_SCHEMA": ("database", "schema"),
    "CC_REDIS_URL": ("redis", "url"),
    "CC_REDIS_PREFIX": ("redis", "prefix"),
    "CC_HTTP_HOST": ("http", "host"),
    "CC_HTTP_PORT": ("http", "port"),
    "CC_PUBLIC_BASE_URL": ("http", "public_base_url"),
    "CC_DEFAULT_REGION": ("crm", "default_region"),
    "CC_AMI_HOST": ("ami", "host"),
    "CC_AMI_PORT": ("ami", "port"),
    "CC_AMI_USERNAME": ("ami", "username"),
    "CC_AMI_SECRET": ("ami", "secret"),
}


class SettingsError(Exception):
    """Bad configuration; the message names the key and what is wrong."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Http(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_base_url: str | None = None


class Database(_Section):
    url: str = "sqlite+aiosqlite:///var/callcenter.db"
    schema_name: str | None = Field(None, alias="schema", pattern=r"^[a-z_][a-z0-9_]{0,62}$")

    @field_validator("url")
    @classmethod
    def _known_driver(cls, v: str) -> str:
        if not v.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return v


class Redis(_Section):
    url: str | None = None
    prefix: str = "cc:"

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v or None


class Crm(_Section):
    default_region: str = Field("US", pattern=r"^[A-Z]{2}$")
    rules_file: str = "crm_rules.yaml"
    note_max_chars: int = Field(10000, ge=100, le=1_000_000)


class Ami(_Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(5038, ge=0, le=65535)
    username: str = "cc"
    secret: str | None = Field(None, repr=False)
    secret_file: str | None = None

    def resolved_secret(self) -> str | None:
        if self.secret_file:
            return Path(self.secret_file).read_text().strip()
        return self.secret


class Agi(_Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(4573, ge=0, le=65535)
    max_sessions: int = Field(2000, ge=1)  # a caller waiting in queue holds a session


class Voice(_Section):
    ivr_flow: str = "demo"  # config/ivr/<name>.yaml
    default_queue: str = "general"
    ack_timeout_s: float = Field(3.0, gt=0, le=30)  # the dial waits this long for the pop's ack
    wrapup_s: float = Field(120.0, gt=0)
    survey: bool = True
    reconnect_grace_s: float = Field(3.0, ge=0)  # a console back within this resumes its offer
    recordings_dir: str = "var/recordings"  # where MixMonitor writes (shared with the PBX host)
    recording_retention_days: int = Field(90, ge=1)  # older recordings are purged


class Demo(_Section):
    """The built-in simulated PBX and traffic, for `make run` without a real Asterisk."""

    enabled: bool = False
    calls_per_minute: float = Field(3.0, ge=0)
    customers: int = Field(2000, ge=0)
    password: str = Field("demo-password", min_length=8, repr=False)
    time_scale: float = Field(1.0, gt=0, le=10)  # simulated PBX time vs real time (tests: 0.01)


class Twilio(_Section):
    """Twilio as the voice carrier (docs/twilio.md)."""

    enabled: bool = False
    account_sid: str = ""
    auth_token: str | None = Field(None, repr=False)  # or auth_token_file; never logged
    auth_token_file: str | None = None
    public_base_url: str | None = None  # the URL Twilio calls (behind a proxy); else http.public_base_url
    api_base_url: str | None = None  # the REST API's base (default api.twilio.com; tests: a local fake)
    hold_music_url: str = "http://com.twilio.sounds.music.s3.amazonaws.com/MARKOVICHAMP-Borghestral.mp3"
    sounds_base_url: str | None = None  # <Play> the flow's sound files from here; else <Say> the text
    voice: str | None = None  # <Say voice=...>
    agent_sip_domain: str | None = None  # a bare agent extension 1001 is dialled as sip:1001@<domain>
    dial_timeout_s: int = Field(20, ge=5, le=600)

    def resolved_token(self) -> str | None:
        if self.auth_token_file:
            return Path(self.auth_token_file).read_text().strip()
        return self.auth_token


class Web(_Section):
    cookie_secure: bool = False
    allowed_origins: list[str] = []
    # behind a TLS proxy: a request with X-Forwarded-Proto: https counts as https (Secure cookies)
    trust_forwarded_proto: bool = False
    api_rate_per_minute: int = Field(1200, ge=1)  # per API token, else per client address
    api_burst: int = Field(300, ge=1)


class ChatSite(_Section):
    """A website allowed to embed the chat widget: its origins and its identity-signing secret."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    origins: list[str] = []  # scheme://host[:port], exactly as browsers send Origin
    secret: str | None = Field(None, repr=False)  # HMAC key for signed identities
    secret_file: str | None = None

    def resolved_secret(self) -> str | None:
        if self.secret_file:
            return Path(self.secret_file).read_text().strip()
        return self.secret


class Chat(_Section):
    """Web chat (docs/chat.md)."""

    enabled: bool = True
    queue: str = "general"  # where chats wait for an agent (after the bot, if any)
    bot_flow: str | None = None  # config/ivr/<name>.yaml run as a chat bot before queueing
    max_message_chars: int = Field(4000, ge=1, le=100_000)
    max_frame_bytes: int = Field(32 * 1024, ge=1024)
    rate_per_session: float = Field(5.0, gt=0)  # messages per second, sustained
    burst_per_session: int = Field(20, ge=1)
    rate_per_ip: float = Field(20.0, gt=0)  # messages and chat starts per second from one address
    burst_per_ip: int = Field(60, ge=1)
    resume_s: float = Field(120.0, ge=0)  # a customer gone this long has left the chat
    handle_s: float = Field(240.0, gt=0)  # average chat length, for the estimated wait
    canned: list[str] = []  # canned responses offered in the console
    # business hours, e.g. {timezone: America/New_York, weekly: {mon-fri: "08:00-20:00"}};
    # outside them the widget offers "leave a message". None: always open
    hours: dict[str, Any] | None = None
    sites: list[ChatSite] = []
    # `make run`'s demo: a shop page on this port (another origin) with the widget embedded
    demo_site_port: int | None = Field(8081, ge=0, le=65535)

    @field_validator("sites", "canned", "hours", mode="before")
    @classmethod
    def _json(cls, v: Any) -> Any:
        import json

        return json.loads(v) if isinstance(v, str) else v


class Email(_Section):
    """The email channel (docs/email.md): SMTP listener, IMAP poller, smarthost for replies."""

    enabled: bool = False
    address: str = "support@example.com"  # From: of replies and acknowledgements
    display_name: str = "Customer service"
    smtp_enabled: bool = True  # the inbound SMTP listener
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(2525, ge=0, le=65535)
    max_message_bytes: int = Field(10_000_000, ge=1000)  # bigger mail is refused (552)
    accept_domains: list[str] = []  # recipient domains taken in; with accept_addresses
    accept_addresses: list[str] = []  # ...and single addresses (empty both: only `address`)
    smarthost_host: str = "127.0.0.1"
    smarthost_port: int = Field(25, ge=1, le=65535)
    smarthost_starttls: bool = False
    smarthost_username: str | None = None
    smarthost_password: str | None = Field(None, repr=False)
    imap_enabled: bool = False
    imap_host: str = "127.0.0.1"
    imap_port: int = Field(143, ge=1, le=65535)
    imap_tls: bool = False
    imap_username: str = ""
    imap_password: str | None = Field(None, repr=False)
    imap_mailbox: str = "INBOX"
    imap_move_to: str | None = None  # move taken mail there (MOVE); else flag it \Seen
    imap_poll_s: float = Field(60.0, gt=0)  # without IDLE; with IDLE, the longest idle
    queue: str = "general"  # where emails wait for an agent
    skill: str = "email"  # agents need this skill (and email capacity)
    acknowledge: bool = True  # the automatic acknowledgement with the ticket number
    wrapup_s: float = Field(60.0, ge=0)
    attachments_dir: str = "var/email"
    max_attachment_bytes: int = Field(5_000_000, ge=1)
    max_attachments: int = Field(20, ge=0)

    @field_validator("accept_domains", "accept_addresses", mode="before")
    @classmethod
    def _comma_list(cls, v: Any) -> Any:
        if isinstance(v, str):  # from the environment: a,b,c
            return [p.strip() for p in v.split(",") if p.strip()]
        return v


_OUTCOMES = ("busy", "no_answer", "congestion", "failed", "agent_unavailable", "cancelled")


class CallbackQueue(_Section):
    max_attempts: int | None = Field(None, ge=1, le=20)
    retry_s: dict[str, float] = {}


class Callbacks(_Section):
    """Callbacks (services/callbacks.py): retry policy, per queue overrides, scheduler."""

    queue: str | None = None  # where a callback is routed when none is said (None: voice.default_queue)
    max_attempts: int = Field(3, ge=1, le=20)
    # seconds before the next attempt, by outcome of the last one
    retry_s: dict[str, float] = {"busy": 300, "no_answer": 900, "congestion": 120, "failed": 300,
                                 "agent_unavailable": 30, "cancelled": 300}
    queues: dict[str, CallbackQueue] = {}
    poll_s: float = Field(5.0, ge=0)  # how often due callbacks are looked for (0: never, tests tick)
    offer_prompt: str = "cc-callback-offer"  # "press 1 to be called back" (routing escalation)
    confirm_prompt: str = "cc-callback-confirm"

    @field_validator("retry_s")
    @classmethod
    def _outcomes(cls, v: dict[str, float]) -> dict[str, float]:
        bad = sorted(k for k, s in v.items() if k not in _OUTCOMES or s < 0)
        if bad:
            raise ValueError(f"unknown outcome or negative delay {bad}; outcomes: {', '.join(_OUTCOMES)}")
        return v


class Sla(_Section):
    """Automatic ticket escalation (services/sla.py) when a ticket nears its SLA."""

    threshold: float = Field(0.8, gt=0, le=1)  # fraction of the SLA elapsed
    default_queue: str = "supervisors"  # for tickets without an escalation queue
    queue_by_type: dict[str, str] = {}  # e.g. {complaint: complaints}
    raise_priority: str | None = "high"
    poll_s: float = Field(60.0, ge=0)  # 0: never (tests check themselves)


class Wallboard(_Section):
    """The supervisors' live wallboard (services/wallboard.py, docs/wallboard.md)."""

    max_wait_s: float = Field(60.0, gt=0)  # alert: a contact waiting longer
    not_ready_s: float = Field(600.0, gt=0)  # alert: an agent longer in not-ready
    sl_min_contacts: int = Field(5, ge=1)  # alert on a service level only once this many counted
    max_updates_per_s: float = Field(10.0, gt=0, le=50)  # per client (updates are coalesced)
    timezone: str = "UTC"  # the center's local day: figures reset at its midnight (IANA name)


class Scaleout(_Section):
    """Several processes on one Redis and one database (callcenter/scaleout/, docs/deploy.md)."""

    enabled: bool = False  # `callcenter run` turns it on when redis.url is set (unless set false)
    lease_ttl_s: float = Field(5.0, gt=0)  # the AMI leader lease and the outbox partition leases
    outbox_partitions: int = Field(4, ge=1, le=64)
    dead_after_s: float = Field(10.0, gt=0)  # a process silent this long is dead: its calls are completed


class Settings(_Section):
    http: Http = Http()
    database: Database = Database()
    redis: Redis = Redis()
    crm: Crm = Crm()
    ami: Ami = Ami()
    agi: Agi = Agi()
    voice: Voice = Voice()
    demo: Demo = Demo()
    web: Web = Web()
    chat: Chat = Chat()
    email: Email = Email()
    twilio: Twilio = Twilio()
    callbacks: Callbacks = Callbacks()
    sla: Sla = Sla()
    wallboard: Wallboard = Wallboard()
    scaleout: Scaleout = Scaleout()
    seed_file: str = "seed.yaml"
    config_dir: Path = DEFAULT_CONFIG_DIR

    def config_path(self, name: str) -> Path:
        p = Path(name)
        return p if p.is_absolute() else self.config_dir / p


def _set(tree: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    node = tree
    for key in path[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise SettingsError(f"{'.'.join(path)}: {key} is not a section")
    node[path[-1]] = None if value == "" else value


def _env_overrides(env: Mapping[str, str]) -> list[tuple[str, tuple[str, ...], str]]:
    out = []
    for name, value in env.items():
        if name in ENV_ALIASES:
            out.append((name, ENV_ALIASES[name], value))
        elif name.startswith("CC_") and "__" in name:
            out.append((name, tuple(p.lower() for p in name[3:].split("__")), value))
    return out


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A YAML file that must hold a mapping; a missing file is an empty mapping."""
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise SettingsError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: must be a mapping")
    return data


def load_settings(
    config_dir: str | Path | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Read settings.yaml from the config directory, apply environment overrides, validate."""
    env = os.environ if env is None else env
    cdir = Path(config_dir or env.get("CC_CONFIG_DIR") or DEFAULT_CONFIG_DIR)
    path = cdir / "settings.yaml"
    tree = read_yaml_mapping(path)
    sources: dict[tuple[str, ...], str] = {}
    for name, key_path, value in _env_overrides(env):
        _set(tree, key_path, value)
        sources[key_path] = name
    tree["config_dir"] = cdir
    try:
        return Settings.model_validate(tree)
    except ValidationError as e:
        raise SettingsError(_explain(e, sources, path)) from None


def _explain(e: ValidationError, sources: dict[tuple[str, ...], str], path: Path) -> str:
    lines = []
    for err in e.errors():
        loc = tuple(str(p) for p in err["loc"])
        where = sources.get(loc, f"{path}: {'.'.join(loc)}")
        got = err.get("input")
        msg = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{where}: {msg} (got {got!r})")
    return "invalid settings:\n  " + "\n  ".join(lines)
