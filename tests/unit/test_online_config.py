"""The optional [online] section of workspace.toml, and keeping Redis passwords out of sight."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakestack.config import OnlineConfig, WorkspaceConfig
from lakestack.errors import InvalidConfig, SchemaMismatch
from lakestack.features.online.base import redact
from lakestack.features.online.codec import column_for

OLD_TOML = """name = "old"
admin = "admin"

[storage]
root = "tables"
options = {  }

[metastore]
url = "sqlite:///metastore.db"

[mlflow]
tracking_uri = "sqlite:///mlflow.db"
"""


def test_a_workspace_toml_without_online_section_loads_with_the_embedded_default(tmp_path: Path) -> None:
    (tmp_path / "workspace.toml").write_text(OLD_TOML)
    config = WorkspaceConfig.load(tmp_path)
    assert config.online == OnlineConfig(url="sqlite:///online.db", key_prefix=None)
    assert config.online.prefix(config.name) == "lakestack:old:"


def test_online_section_round_trips(tmp_path: Path) -> None:
    config = WorkspaceConfig(name="t", online=OnlineConfig(url="redis://:pw@h:6380/2", key_prefix="team:"))
    config.dump(tmp_path)
    assert WorkspaceConfig.load(tmp_path) == config
    assert config.online.prefix("t") == "team:"
    WorkspaceConfig(name="t").dump(tmp_path)
    assert 'url = "sqlite:///online.db"' in (tmp_path / "workspace.toml").read_text()


@pytest.mark.parametrize(
    "url", ["memcached://:s3cret@h:1", "sqlite:///:memory:", "sqlite:///", "postgresql://u:s3cret@h/db"]
)
def test_unusable_urls_are_refused_without_echoing_them(tmp_path: Path, url: str) -> None:
    (tmp_path / "workspace.toml").write_text(OLD_TOML + f'\n[online]\nurl = "{url}"\n')
    with pytest.raises(InvalidConfig, match=r"'online\.url'") as raised:
        WorkspaceConfig.load(tmp_path)
    assert "s3cret" not in raised.value.message
    (tmp_path / "workspace.toml").write_text(OLD_TOML + '\n[online]\nurl = "redis://h"\nttl = 3\n')
    with pytest.raises(InvalidConfig, match=r"online\.ttl"):
        WorkspaceConfig.load(tmp_path)


def test_redact_hides_passwords_only() -> None:
    assert redact("redis://:hunter2@10.0.0.5:6379/1") == "redis://:***@10.0.0.5:6379/1"
    assert redact("rediss://app:hunter2@cache.internal/0") == "rediss://app:***@cache.internal/0"
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert "hunter2" not in redact("redis://:hunter2@host:notaport/0")


def test_key_columns_refuse_types_that_cannot_be_compared_exactly() -> None:
    import pyarrow as pa

    assert column_for(pa.field("id", pa.int32()), is_key=True).kind == "int"
    assert column_for(pa.field("blob", pa.binary())).kind == "bytes"
    with pytest.raises(SchemaMismatch, match="cannot be a key"):
        column_for(pa.field("blob", pa.binary()), is_key=True)
