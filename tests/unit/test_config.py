from pathlib import Path

import pytest

from lakestack.config import WorkspaceConfig, resolve_sqlite_url, resolve_storage_root
from lakestack.errors import InvalidConfig


def test_config_round_trips_through_toml(tmp_path: Path) -> None:
    config = WorkspaceConfig.model_validate(
        {"name": "churn", "storage": {"root": "s3://bucket/lake", "options": {"AWS_REGION": "eu-west-1"}}}
    )
    config.dump(tmp_path)
    assert WorkspaceConfig.load(tmp_path) == config


def test_unknown_keys_are_rejected_naming_the_field(tmp_path: Path) -> None:
    (tmp_path / "workspace.toml").write_text('name = "x"\n[storage]\nrot = "typo"\n')
    with pytest.raises(InvalidConfig, match=r"storage\.rot"):
        WorkspaceConfig.load(tmp_path)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "workspace.toml").write_text("name = \n")
    with pytest.raises(InvalidConfig, match=r"workspace\.toml is not valid TOML"):
        WorkspaceConfig.load(tmp_path)


def test_relative_locations_resolve_against_the_workspace_folder(tmp_path: Path) -> None:
    assert resolve_storage_root("tables", tmp_path) == str(tmp_path / "tables")
    assert resolve_storage_root("gs://bucket/x", tmp_path) == "gs://bucket/x"
    assert resolve_sqlite_url("sqlite:///metastore.db", tmp_path) == f"sqlite:///{tmp_path}/metastore.db"
    assert resolve_sqlite_url("sqlite:////abs/m.db", tmp_path) == "sqlite:////abs/m.db"
    assert resolve_sqlite_url("postgresql://h/db", tmp_path) == "postgresql://h/db"
