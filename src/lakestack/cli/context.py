"""Global CLI options and the workspace they open."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import typer

from lakestack.workspace import Workspace, default_path


@dataclass
class CliState:
    workspace_path: Path | None = None
    token: str | None = None
    principal: str | None = None
    debug: bool = False
    _workspace: Workspace | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return self.workspace_path or default_path()

    def open(self) -> Workspace:
        """Open the workspace once per command, as the principal the options name."""
        if self._workspace is None:
            ws = Workspace.open(self.path, token=self.token)
            self._workspace = ws.as_principal(self.principal) if self.principal else ws
        return self._workspace


STATE = CliState()


def workspace() -> Workspace:
    return STATE.open()


def split_csv(values: list[str] | None) -> list[str]:
    """Accept `--opt a,b` and `--opt a --opt b` alike."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def bad(message: str) -> typer.BadParameter:
    return typer.BadParameter(message)
