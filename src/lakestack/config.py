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
```

Relative paths resolve against the folder holding `workspace.toml`, so a workspace folder
can be moved or copied whole.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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


class WorkspaceConfig(_Strict):
    name: str = "lakestack"
    admin: str = "admin"
    storage: StorageConfig = Field(default_factory=StorageConfig)
    metastore: MetastoreConfig = Field(default_factory=MetastoreConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    online: OnlineConfig = Field(default_factory=OnlineConfig)
    jobs: JobsConfig = Field(default_factory=JobsConfig)

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
