"""Opening, initialising and upgrading workspaces, on SQLite and PostgreSQL metastores."""

from pathlib import Path

import pytest
from sqlalchemy import inspect

from lakestack import Workspace
from lakestack.catalog.metastore import Metastore
from lakestack.config import WorkspaceConfig
from lakestack.errors import InvalidParameter, SecurableExists, WorkspaceError, WorkspaceNotFound


def test_init_creates_environment_catalogs_and_is_idempotent(
    tmp_path: Path, metastore_url: str | None
) -> None:
    first = Workspace.init(tmp_path / "ws", metastore_url=metastore_url)
    first.schemas.create("dev.churn")
    again = Workspace.init(tmp_path / "ws", metastore_url=metastore_url)
    assert [c.full_name for c in again.catalogs.list()] == ["dev", "prod", "staging", "test"]
    assert [s.full_name for s in again.schemas.list("dev")] == ["dev.churn"]
    assert again.caller.name == "admin" and again.caller.is_admin
    info = again.info()
    assert info["metastore_revision"] == Metastore(again._core.metastore.url).head_revision()
    assert info["mlflow_tracking_uri"].startswith("sqlite:///") and info["mlflow_tracking_uri"].endswith(
        "mlflow.db"
    )
    first.close()
    again.close()


def test_open_without_a_workspace_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceNotFound, match="workspace init"):
        Workspace.open(tmp_path / "nothing")


def test_open_by_url_explains_it_needs_the_server(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="server"):
        Workspace.open("https://lakestack.example.com")


def test_default_path_comes_from_lakestack_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKESTACK_HOME", str(tmp_path / "home"))
    Workspace.init().close()
    assert (tmp_path / "home" / "workspace.toml").exists()
    Workspace.open().close()


def test_upgrading_an_old_workspace_keeps_its_data(tmp_path: Path, metastore_url: str | None) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    config = (
        WorkspaceConfig()
        if metastore_url is None
        else WorkspaceConfig.model_validate({"metastore": {"url": metastore_url}})
    )
    config.dump(folder)
    url = metastore_url or f"sqlite:///{folder}/metastore.db"
    old = Metastore(url)
    old.upgrade("0001")  # a workspace made by the first release: no tokens, no audit log
    assert "audit_log" not in inspect(old.engine).get_table_names()
    old.dispose()

    with pytest.raises(WorkspaceError, match="workspace upgrade"):
        Workspace.open(folder)
    assert Workspace.upgrade(folder) == Metastore(url).head_revision()
    ws = Workspace.init(folder)  # idempotent init on an upgraded workspace
    assert "audit_log" in inspect(ws._core.metastore.engine).get_table_names()
    assert ws.audit.list(limit=1)
    ws.close()


def test_catalog_names_reserved_by_sql_and_duplicates_are_refused(workspace: Workspace) -> None:
    with pytest.raises(InvalidParameter, match="reserved"):
        workspace.catalogs.create("main")
    with pytest.raises(SecurableExists):
        workspace.catalogs.create("dev")
    assert workspace.catalogs.create("dev", exist_ok=True).full_name == "dev"


def test_drop_refuses_non_empty_schema_unless_cascade(workspace: Workspace) -> None:
    import pyarrow as pa

    from lakestack.errors import Conflict

    workspace.schemas.create("dev.tmp")
    info = workspace.tables.create("dev.tmp.t", data=pa.table({"a": [1]}))
    with pytest.raises(Conflict, match="cascade"):
        workspace.schemas.drop("dev.tmp")
    dropped = workspace.schemas.drop("dev.tmp", cascade=True)
    assert [d.full_name for d in dropped] == ["dev.tmp.t", "dev.tmp"]
    assert not Path(info.location).exists()
    assert not workspace.schemas.exists("dev.tmp")


def test_storage_root_may_be_a_url(tmp_path: Path) -> None:
    """Object-store roots are URLs handed to deltalake as they are; file:// exercises that path here."""
    root = f"file://{tmp_path}/lake"
    ws = Workspace.init(tmp_path / "ws", storage_root=root)
    ws.schemas.create("dev.x")
    import pyarrow as pa

    info = ws.tables.create("dev.x.t", data=pa.table({"a": [1, 2]}))
    assert info.location == f"{root}/dev/x/t"
    assert (tmp_path / "lake" / "dev" / "x" / "t" / "_delta_log").is_dir()
    assert ws.sql("SELECT sum(a) AS s FROM dev.x.t").column("s")[0].as_py() == 3
    ws.tables.drop("dev.x.t")
    assert not (tmp_path / "lake" / "dev" / "x" / "t").exists()
    ws.close()


def test_config_holding_credentials_is_private_and_passwords_are_not_echoed(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws", storage_options={"AWS_SECRET_ACCESS_KEY": "k"})
    assert (tmp_path / "ws" / "workspace.toml").stat().st_mode & 0o077 == 0
    ws.close()
    bad = tmp_path / "bad"
    bad.mkdir()
    WorkspaceConfig.model_validate({"metastore": {"url": "postgresql+nodriver://u:S3CRET@h/db"}}).dump(bad)
    from lakestack.errors import InvalidConfig

    with pytest.raises(InvalidConfig) as info:
        Workspace.open(bad)
    assert "S3CRET" not in info.value.message and "***" in info.value.message


def test_an_unregistered_table_folder_is_a_conflict_not_overwritten(workspace: Workspace) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    from lakestack.errors import Conflict

    workspace.schemas.create("dev.x")
    leftover = f"{workspace.storage_root}/dev/x/t"
    write_deltalake(leftover, pa.table({"keep": [1]}))
    with pytest.raises(Conflict, match="already holds a Delta table"):
        workspace.tables.create("dev.x.t", data=pa.table({"a": [1]}))
    assert not workspace.tables.exists("dev.x.t")
    from deltalake import DeltaTable

    assert DeltaTable(leftover).to_pyarrow_table().to_pylist() == [{"keep": 1}]  # untouched


def test_migrations_create_exactly_the_orm_schema_and_keep_data(workspace: Workspace) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from lakestack.catalog.models import Base

    metastore = workspace._core.metastore
    with metastore.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []

    workspace.principals.create("bob")
    workspace.grants.grant("USE_CATALOG", "catalog", "dev", "bob")
    token = workspace.tokens.create(principal="bob")
    with metastore.engine.begin() as connection:  # back to a release before lineage
        command.downgrade(metastore._alembic(connection), "0002")
    metastore.upgrade()
    again = Workspace.open(workspace.folder, token=token.secret)
    assert again.caller.name == "bob"
    assert [g.privilege for g in workspace.grants.show("catalog", "dev", principal="bob")] == ["USE_CATALOG"]
