"""The Workspace facade: one object that opens everything a project uses, as one principal.

```python
ws = Workspace.init("./.lakestack")          # idempotent: catalogs dev, staging, prod, test
ws.tables.create("dev.raw.trips", data=df)
ws.sql("SELECT count(*) FROM dev.raw.trips")
alice = ws.as_principal("alice")             # same workspace, acting as alice
```
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from lakestack.catalog.access import AccessControl
from lakestack.catalog.governance import Audit, Grants, Principals, Tokens
from lakestack.catalog.metastore import Metastore
from lakestack.catalog.namespaces import Catalogs, Schemas
from lakestack.catalog.principals import PrincipalStore
from lakestack.catalog.securables import SecurableInfo, SecurableStore
from lakestack.config import (
    CONFIG_FILE,
    MetastoreConfig,
    MlflowConfig,
    StorageConfig,
    WorkspaceConfig,
    resolve_sqlite_url,
    resolve_storage_root,
)
from lakestack.errors import InvalidConfig, InvalidToken, WorkspaceError, WorkspaceNotFound
from lakestack.features.online import OnlineStoreOpener
from lakestack.features.store import FeatureStore
from lakestack.jobs.scheduler import Scheduler
from lakestack.jobs.service import Jobs
from lakestack.jobs.triggers import TableVersion
from lakestack.lineage.service import Lineage
from lakestack.models.registry import ModelRegistry
from lakestack.models.tracking import Tracking
from lakestack.tables.service import Tables
from lakestack.tables.sql import run_query

ENVIRONMENTS = ("dev", "staging", "prod", "test")
HOME_ENV = "LAKESTACK_HOME"


def default_path() -> Path:
    """`$LAKESTACK_HOME`, else `./.lakestack`."""
    return Path(os.environ.get(HOME_ENV) or ".lakestack")


@dataclass(frozen=True)
class _Core:
    """What every principal's view of one workspace shares."""

    folder: Path
    config: WorkspaceConfig
    metastore: Metastore
    storage_root: str
    tracking_uri: str


class Workspace:
    """A workspace opened as one acting principal. Every call through it is checked and audited."""

    def __init__(self, core: _Core, principal: str) -> None:
        self._core = core
        self._principals_store = PrincipalStore(core.metastore)
        securables = SecurableStore(core.metastore)
        access = self._access = AccessControl(core.metastore, securables)
        self.caller = self._principals_store.caller(principal)
        options = dict(core.config.storage.options)
        self.tables = Tables(core.metastore, securables, access, self.caller, core.storage_root, options)
        self.catalogs = Catalogs(core.metastore, securables, access, self.caller, self.tables.delete_data)
        self.schemas = Schemas(core.metastore, securables, access, self.caller, self.tables.delete_data)
        online = OnlineStoreOpener(core.config.online, core.folder, core.config.name)
        self.features = FeatureStore(self.tables, online)
        self.lineage = Lineage(
            core.metastore, securables, access, self.caller, self._resolve_model, self._table_version
        )
        self.tracking = Tracking(core.tracking_uri, core.storage_root, self.caller.name, self.lineage)
        self.models = ModelRegistry(
            core.metastore,
            securables,
            access,
            self.caller,
            core.tracking_uri,
            self.tables,
            self.tracking,
            self.features,
            self.lineage,
        )
        self.jobs = Jobs(core.metastore, securables, access, self.caller, core.folder)
        self.principals = Principals(self._principals_store, access, self.caller)
        self.tokens = Tokens(self._principals_store, access, self.caller)
        self.grants = Grants(self._principals_store, access, self.caller)
        self.audit = Audit(self._principals_store, access, self.caller)
        self._views: dict[str, Workspace] = {}

    def _resolve_model(self, uri: str) -> tuple[str, int]:
        version = self.models.resolve(uri, "lineage.resolve")
        return version.name, version.version

    def _table_version(self, name: str) -> int:
        return self.tables.get(name).version

    def _view(self, principal: str) -> Workspace:
        """This workspace as `principal`, made once (the scheduler asks every few seconds)."""
        if principal not in self._views:
            self._views[principal] = self.as_principal(principal)
        return self._views[principal]

    def scheduler(self, **options: Any) -> Scheduler:
        """The job scheduler of this workspace (admins only): fires schedules and triggers,
        recovers lost runs. Options: see `lakestack.jobs.scheduler.Scheduler`."""
        return self.jobs.scheduler(self._newest_versions, **options)

    def _newest_versions(self, principal: str, names: list[str]) -> dict[str, TableVersion]:
        # A table-update trigger sees only what the job's principal may read.
        tables = self.tables if principal == self.caller.name else self._view(principal).tables
        found = {}
        for name in names:
            newest = tables.history(name, limit=1)[0]
            found[name] = TableVersion(newest.version, newest.timestamp)
        return found

    # --- opening -------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        path: str | Path | None = None,
        *,
        storage_root: str | None = None,
        storage_options: dict[str, str] | None = None,
        metastore_url: str | None = None,
        tracking_uri: str | None = None,
        admin: str = "admin",
        name: str | None = None,
    ) -> Workspace:
        """Create a workspace, or bring an existing one up to date (idempotent).

        Writes `workspace.toml` if missing, migrates the metastore, and makes sure the admin
        principal and the catalogs dev, staging, prod and test exist.
        """
        folder = Path(path) if path is not None else default_path()
        _refuse_url(str(folder))
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / CONFIG_FILE).exists():
            config = WorkspaceConfig(
                name=name or folder.resolve().name.lstrip(".") or "lakestack",
                admin=admin,
                storage=StorageConfig(root=storage_root or "tables", options=storage_options or {}),
                metastore=MetastoreConfig(url=metastore_url or "sqlite:///metastore.db"),
                mlflow=MlflowConfig(tracking_uri=tracking_uri or "sqlite:///mlflow.db"),
            )
            config.dump(folder)
        core = _open_core(folder)
        core.metastore.upgrade()
        store = PrincipalStore(core.metastore)
        store.ensure(core.config.admin, "user", is_admin=True)
        store.ensure("admins", "group", is_admin=True)
        ws = cls(core, core.config.admin)
        for env in ENVIRONMENTS:
            ws.catalogs.create(env, comment=f"The {env} environment", exist_ok=True)
        return ws

    @classmethod
    def open(
        cls, path_or_url: str | Path | None = None, *, token: str | None = None, principal: str | None = None
    ) -> Workspace:
        """Open an existing workspace folder.

        Acts as the owner of `token` when given; otherwise as `principal`, or as the workspace
        admin (an embedded workspace trusts whoever can read its folder).
        """
        folder = Path(path_or_url) if path_or_url is not None else default_path()
        _refuse_url(str(path_or_url or ""))
        if not (folder / CONFIG_FILE).exists():
            raise WorkspaceNotFound(
                f"No workspace at '{folder}' (no {CONFIG_FILE}). "
                f"Create one with: lakestack -w {folder} workspace init"
            )
        core = _open_core(folder)
        core.metastore.check_current(str(folder))
        acting = _authenticate(core, token) if token else principal
        return cls(core, acting or core.config.admin)

    @classmethod
    def upgrade(cls, path: str | Path | None = None) -> str:
        """Migrate an existing workspace's metastore to this lakestack's schema; returns the revision."""
        folder = Path(path) if path is not None else default_path()
        if not (folder / CONFIG_FILE).exists():
            raise WorkspaceNotFound(
                f"No workspace at '{folder}'. Create one with: lakestack -w {folder} workspace init"
            )
        core = _open_core(folder)
        core.metastore.upgrade()
        revision = core.metastore.current_revision() or ""
        core.metastore.dispose()
        return revision

    def as_principal(self, name: str) -> Workspace:
        """The same workspace acting as another principal; only admins may switch."""
        self._access.require_admin(self.caller, "workspace.as_principal", "act as another principal", name)
        return Workspace(self._core, name)

    def close(self) -> None:
        self.features.close()
        self._core.metastore.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- queries and facts ---------------------------------------------------------------

    def sql(self, query: str, parameters: list[Any] | dict[str, Any] | None = None) -> pa.Table:
        """Run one SELECT over workspace tables named `catalog.schema.table`; needs SELECT on each."""
        return run_query(query, self.tables.dataset, parameters)

    @property
    def folder(self) -> Path:
        return self._core.folder

    @property
    def config(self) -> WorkspaceConfig:
        return self._core.config

    @property
    def storage_root(self) -> str:
        return self._core.storage_root

    @property
    def mlflow_tracking_uri(self) -> str:
        return self._core.tracking_uri

    def info(self) -> dict[str, Any]:
        """Where everything lives, and who is acting."""
        catalogs: list[SecurableInfo] = self.catalogs.list()
        return {
            "name": self.config.name,
            "folder": str(self.folder.resolve()),
            "storage_root": self.storage_root,
            "metastore": _redact(self._core.metastore.url),
            "metastore_revision": self._core.metastore.current_revision(),
            "mlflow_tracking_uri": _redact(self.mlflow_tracking_uri),
            "principal": self.caller.name,
            "is_admin": self.caller.is_admin,
            "catalogs": [c.full_name for c in catalogs],
        }


def _refuse_url(text: str) -> None:
    if text.startswith(("http://", "https://")):
        raise WorkspaceError(
            f"Opening a workspace by URL ({text}) needs the lakestack server, which this version does "
            "not include yet. Open the workspace folder instead."
        )


def _open_core(folder: Path) -> _Core:
    config = WorkspaceConfig.load(folder)
    url = resolve_sqlite_url(config.metastore.url, folder)
    try:
        metastore = Metastore(url)
    except Exception as exc:  # a malformed URL: name the field rather than the SQLAlchemy internals
        detail = str(exc).replace(url, _redact(url))
        raise InvalidConfig(
            f"{folder / CONFIG_FILE}: metastore.url {_redact(url)!r} is not usable: {detail}"
        ) from None
    return _Core(
        folder=folder,
        config=config,
        metastore=metastore,
        storage_root=resolve_storage_root(config.storage.root, folder),
        tracking_uri=resolve_sqlite_url(config.mlflow.tracking_uri, folder),
    )


def _authenticate(core: _Core, token: str) -> str:
    """The principal owning `token`; a failed attempt is audited (with the token id, never the secret)."""
    try:
        return PrincipalStore(core.metastore).authenticate(token)
    except InvalidToken:
        token_id = token.split("_")[1] if token.startswith("lsk_") and token.count("_") >= 2 else None
        access = AccessControl(core.metastore, SecurableStore(core.metastore))
        access.record("anonymous", "auth.token", None, None, None, False, {"token_id": token_id})
        raise


def _redact(url: str) -> str:
    """Hide a password in a database URL before showing it."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
