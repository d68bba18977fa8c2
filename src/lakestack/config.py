"""`workspace.toml`: where a workspace keeps its tables, its metastore and its MLflow store.

```toml
name = "churn"
admin = "admin"

[storage]
root = "tables"                 # relative to the workspace folder, or s3://, abfss://, gs://
options = {}                    # passed to deltalake as storage_options (credentials, endpoint)

[metastore]
url = "sqlite:///metastore.db"  # or postgresql+psycopg://user@host/db

[mlflow]
tracking_uri = "sqlite:///mlflow.db"

[online]                        # optional: where published feature tables are served from
url = "sqlite:///online.db"     # embedded; or redis://[:password@]host:6379/0 (rediss:// for TLS)
key_prefix = "lakestack:churn:" # Redis only (default "lakestack:<name>:"): workspaces sharing a Redis

[jobs]                          # optional
ray_address = "10.0.0.5:6379"   # the Ray cluster for `compute: ray` tasks: host:port of a
                                # `ray start --head` cluster, ray://host:10001, auto or local;
                                # unset: what ray.init() picks. LAKESTACK_RAY_ADDRESS overrides it.

[notifications]                 # optional: how job (and alert) notifications are delivered
secret_env = "LAKESTACK_WEBHOOK_SECRET"  # signs inline-url webhooks; unset: they go out unsigned
max_attempts = 5                # per message; retried on 429, 5xx and connection errors
backoff_seconds = 1.0           # first retry delay, doubling each time (with jitter)
max_backoff_seconds = 30.0      # caps the backoff and a receiver's Retry-After
timeout_seconds = 10.0          # per attempt

[notifications.smtp]            # e-mail notifications (none without this table)
host = "smtp.example.com"
port = 587                      # default: 465 with ssl, 587 with starttls, else 25
sender = "lakestack@example.com"
username = "lakestack"          # optional: log in with the password in $password_env
password_env = "LAKESTACK_SMTP_PASSWORD"
starttls = true                 # the default; or ssl = true (SMTPS); both false: plain SMTP

[notifications.destinations.ops-alerts]  # a webhook a job names as `{id: ops-alerts}`
url = "https://hooks.example.com/lakestack"  # or url_env = "OPS_HOOK_URL" when the URL is a secret
secret_env = "OPS_HOOK_SECRET"  # the HMAC signing secret; omitted: sent unsigned
```

Secrets (the SMTP password, signing secrets, secret URLs) are never in this file: it names the
environment variables that hold them, read when a notification is sent.

Relative paths resolve against the folder holding `workspace.toml`, so a workspace folder
can be moved or copied whole.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from lakestack.errors import InvalidConfig

CONFIG_FILE = "workspace.toml"
REMOTE_SCHEMES = ("s3://", "s3a://", "abfss://", "az://", "gs://", "gcs://", "file://")
ONLINE_SCHEMES = ("sqlite:///", "redis://", "rediss://")
#: `host:port`, `ray://host:port` (IPv6 hosts in brackets), `auto` or `local`.
RAY_ADDRESS_PATTERN = re.compile(r"auto|local|(ray://)?([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageConfig(_Strict):
    root: str = "tables"
    options: dict[str, str] = Field(default_factory=dict)

    @field_validator("root")
    @classmethod
    def _no_empty_root(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("storage root must not be empty")
        return value.rstrip("/") or "/"


class MetastoreConfig(_Strict):
    url: str = "sqlite:///metastore.db"


class MlflowConfig(_Strict):
    tracking_uri: str = "sqlite:///mlflow.db"


class OnlineConfig(_Strict):
    url: str = "sqlite:///online.db"
    key_prefix: str | None = None

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        # The message must never echo the URL: it may hold a password.
        if not value.startswith(ONLINE_SCHEMES):
            raise ValueError("use sqlite:///file.db or redis://host:port/db (rediss:// for TLS)")
        if value.startswith("sqlite:") and value.removeprefix("sqlite:///") in ("", ":memory:"):
            raise ValueError("an online store needs a file, e.g. sqlite:///online.db")
        return value

    def prefix(self, workspace_name: str) -> str:
        """The Redis key prefix: the configured one, else `lakestack:<workspace name>:`."""
        return self.key_prefix if self.key_prefix is not None else f"lakestack:{workspace_name}:"


class JobsConfig(_Strict):
    ray_address: str | None = None

    @field_validator("ray_address")
    @classmethod
    def _ray_address(cls, value: str | None) -> str | None:
        if value is not None and not RAY_ADDRESS_PATTERN.fullmatch(value.strip()):
            raise ValueError("use host:port (a `ray start --head` cluster), ray://host:port, auto or local")
        return value.strip() if value is not None else None


# --- [notifications] -------------------------------------------------------------------

#: A notification destination id (the same rule as a job's `webhook_notifications` `id`).
DESTINATION_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def _env_name(value: str | None) -> str | None:
    # Only a variable's name is ever in the file; the value is read when a message is sent.
    if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", value):
        raise ValueError("name an environment variable (letters, digits and '_'), e.g. 'OPS_HOOK_SECRET'")
    return value


def _webhook_url(value: str | None) -> str | None:
    # The message never echoes the URL: its path or query may be a token.
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("a webhook url must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a webhook url must not hold a user or password")
    return value


EnvName = Annotated[str | None, AfterValidator(_env_name)]


class SmtpConfig(_Strict):
    """The SMTP server e-mail notifications go through; the password comes from `password_env`."""

    host: Annotated[str, Field(min_length=1, pattern=r"^[^\s/@]+$")]
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    sender: Annotated[str, Field(pattern=r"^[^@\s,;<>]+@[^@\s,;<>]+$")]
    username: str | None = None
    password_env: EnvName = None
    #: Upgrade the connection with STARTTLS; by default, unless `ssl` is set.
    starttls: bool | None = None
    ssl: bool = False
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.ssl and self.starttls:
            raise ValueError("choose ssl = true (SMTPS) or starttls = true, not both")
        if self.password_env is not None and self.username is None:
            raise ValueError("password_env needs a username to log in with")
        return self

    @property
    def use_starttls(self) -> bool:
        """Whether the connection is upgraded with STARTTLS."""
        return self.starttls if self.starttls is not None else not self.ssl

    @property
    def effective_port(self) -> int:
        """The configured port, else the usual one for the connection's security."""
        if self.port is not None:
            return self.port
        return 465 if self.ssl else 587 if self.use_starttls else 25


class DestinationConfig(_Strict):
    """A webhook destination jobs and alerts name by id: its URL (`url`, or `url_env` when the
    URL itself is a secret) and the env variable holding its signing secret (unsigned without)."""

    url: Annotated[str | None, AfterValidator(_webhook_url)] = None
    url_env: EnvName = None
    secret_env: EnvName = None

    @model_validator(mode="after")
    def _one_url(self) -> Self:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("a destination needs exactly one of url and url_env")
        return self


class NotificationsConfig(_Strict):
    """How notifications are delivered: retries, the SMTP server, webhook destinations.

    `secret_env` signs webhooks given as an inline `url` in a job; without it they are sent
    unsigned (and their delivery log says so).
    """

    secret_env: EnvName = None
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    backoff_seconds: Annotated[float, Field(ge=0, le=60)] = 1.0
    max_backoff_seconds: Annotated[float, Field(ge=0, le=600)] = 30.0
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0
    smtp: SmtpConfig | None = None
    destinations: dict[str, DestinationConfig] = Field(default_factory=dict)

    def secret_env_names(self) -> frozenset[str]:
        """The environment variables holding notification secrets (task processes never see them)."""
        names = {self.secret_env, self.smtp.password_env if self.smtp else None}
        for destination in self.destinations.values():
            names |= {destination.url_env, destination.secret_env}
        return frozenset(name for name in names if name)

    @field_validator("destinations")
    @classmethod
    def _ids(cls, value: dict[str, DestinationConfig]) -> dict[str, DestinationConfig]:
        for key in value:
            if not DESTINATION_ID.fullmatch(key):
                raise ValueError(f"invalid destination id {key!r}: use letters, digits, '_', '-', '.'")
        return value


class WorkspaceConfig(_Strict):
    name: str = "lakestack"
    admin: str = "admin"
    storage: StorageConfig = Field(default_factory=StorageConfig)
    metastore: MetastoreConfig = Field(default_factory=MetastoreConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    online: OnlineConfig = Field(default_factory=OnlineConfig)
    jobs: JobsConfig = Field(default_factory=JobsConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)

    @classmethod
    def load(cls, folder: Path) -> WorkspaceConfig:
        """Read and validate `<folder>/workspace.toml`; errors name the file and the field."""
        path = folder / CONFIG_FILE
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise InvalidConfig(f"{path} is not valid TOML: {exc}. Fix the file or re-run init.") from exc
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidConfig(f"{path}: '{where}': {first['msg']}. Fix that field in the file.") from exc

    def dump(self, folder: Path) -> None:
        """Write this config as `<folder>/workspace.toml`."""
        options = ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in self.storage.options.items())
        text = (
            f"name = {json.dumps(self.name)}\n"
            f"admin = {json.dumps(self.admin)}\n\n"
            f"[storage]\nroot = {json.dumps(self.storage.root)}\noptions = {{ {options} }}\n\n"
            f"[metastore]\nurl = {json.dumps(self.metastore.url)}\n\n"
            f"[mlflow]\ntracking_uri = {json.dumps(self.mlflow.tracking_uri)}\n\n"
            f"[online]\nurl = {json.dumps(self.online.url)}\n"
        )
        if self.online.key_prefix is not None:
            text += f"key_prefix = {json.dumps(self.online.key_prefix)}\n"
        if self.jobs.ray_address is not None:
            text += f"\n[jobs]\nray_address = {json.dumps(self.jobs.ray_address)}\n"
        path = folder / CONFIG_FILE
        path.touch(mode=0o600)  # it may hold storage credentials: readable by its owner only
        path.write_text(text)


def resolve_storage_root(root: str, folder: Path) -> str:
    """An absolute local path or a URL for the storage root."""
    if root.startswith(REMOTE_SCHEMES):
        return root
    path = Path(root).expanduser()
    return str(path if path.is_absolute() else (folder / path).resolve())


def resolve_sqlite_url(url: str, folder: Path) -> str:
    """Make a relative `sqlite:///file` URL absolute against the workspace folder."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str((folder / url[len(prefix) :]).resolve())
    return url
