"""`ws.tracking`: MLflow runs in the workspace's tracking store that know what made them.

A run started here records, without being asked: the code version (git commit, branch, dirty
flag), the acting principal, the Python environment, and every workspace table version the
code inside the run read, as MLflow dataset inputs (name = table, source = Delta path + version).
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lakestack.catalog.names import validate_part
from lakestack.lineage.service import Lineage
from lakestack.lineage.store import NodeRef
from lakestack.tables import observe

EXPERIMENT_PREFIX = "/lakestack/"


def code_version(folder: Path | None = None) -> dict[str, str]:
    """Git commit, branch and dirty flag of the checkout holding `folder` (empty when none)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=folder or Path.cwd(), capture_output=True, text=True, timeout=10, check=False
        )
        if done.returncode != 0:
            raise LookupError(done.stderr.strip())
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
    except (LookupError, OSError):
        return {}
    return {
        "mlflow.source.git.commit": commit,
        "mlflow.source.git.branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "lakestack.git.dirty": str(bool(git("status", "--porcelain", "--untracked-files=no"))).lower(),
    }


def python_environment() -> dict[str, Any]:
    """The interpreter and every installed distribution, as logged with each run."""
    packages = {
        d.metadata["Name"]: d.version for d in importlib.metadata.distributions() if d.metadata["Name"]
    }
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": dict(sorted(packages.items())),
    }


ARTIFACTS_FOLDER = "_mlflow"  # under the storage root; reserved as a catalog name


class Tracking:
    def __init__(self, tracking_uri: str, storage_root: str, principal: str, lineage: Lineage) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = f"{storage_root.rstrip('/')}/{ARTIFACTS_FOLDER}"
        self._principal = principal
        self._lineage = lineage

    def _mlflow(self) -> Any:
        import mlflow  # heavy: only when tracking is used

        # MLflow's fluent API is process-global: point it (tracking and registry) at this workspace.
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        return mlflow

    def experiment_name(self, project: str) -> str:
        return EXPERIMENT_PREFIX + validate_part(project, "project name")

    @contextmanager
    def start_run(
        self,
        project: str,
        run_name: str | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
    ) -> Iterator[Any]:
        """Start an MLflow run in the project's experiment; yields the `mlflow.ActiveRun`.

        Inside the block the plain `mlflow.log_*` functions log to this run, every table
        version lakestack reads is logged as a dataset input, and the run's lineage (code
        commit, table versions read and written, models registered) is recorded.
        """
        mlflow = self._mlflow()
        name = self.experiment_name(project)
        if mlflow.get_experiment_by_name(name) is None:
            # Artifacts live with the workspace's data, not in ./mlruns of whatever the cwd is.
            location = f"{self.artifact_root}/{validate_part(project, 'project name')}"
            mlflow.MlflowClient().create_experiment(name, artifact_location=location)
        mlflow.set_experiment(name)
        code = code_version()
        run_tags = {"lakestack.principal": self._principal, **code, **(tags or {})}
        with mlflow.start_run(run_name=run_name, tags=run_tags) as run:
            mlflow.log_dict(python_environment(), "environment/python_env.json")
            if params:
                mlflow.log_params(params)
            activity = NodeRef("run", run.info.run_id)
            about = {
                "experiment": name,
                "run_name": run.info.run_name,
                "principal": self._principal,
                "git_dirty": code.get("lakestack.git.dirty"),
            }
            commit = {
                "sha": code.get("mlflow.source.git.commit", ""),
                "branch": code.get("mlflow.source.git.branch", ""),
            }
            with self._lineage.activity(activity, about, commit), observe.listening(_InputLogger(mlflow)):
                yield run

    def runs(self, project: str, max_results: int = 100) -> list[Any]:
        """The project's runs, newest first (`mlflow.entities.Run`)."""
        mlflow = self._mlflow()
        experiment = mlflow.get_experiment_by_name(self.experiment_name(project))
        if experiment is None:
            return []
        client = mlflow.MlflowClient()
        return list(
            client.search_runs(
                [experiment.experiment_id], max_results=max_results, order_by=["start_time DESC"]
            )
        )

    def experiments(self) -> list[Any]:
        """The workspace's project experiments (`mlflow.entities.Experiment`)."""
        mlflow = self._mlflow()
        found = mlflow.MlflowClient().search_experiments(filter_string=f"name LIKE '{EXPERIMENT_PREFIX}%'")
        return sorted(found, key=lambda e: e.name)

    def get_run(self, run_id: str) -> Any:
        """One run (`mlflow.entities.Run`), or NotFound."""
        from mlflow.exceptions import MlflowException

        from lakestack.errors import NotFound

        mlflow = self._mlflow()
        try:
            return mlflow.MlflowClient().get_run(run_id)
        except MlflowException:
            raise NotFound(f"Run '{run_id}' not found. List runs with: lakestack runs ls PROJECT") from None


class _InputLogger:
    """Logs each table version read inside a run once, as an MLflow dataset input."""

    def __init__(self, mlflow: Any) -> None:
        self._mlflow = mlflow
        self._seen: set[tuple[str, int]] = set()

    def __call__(self, access: observe.TableAccess) -> None:
        if access.mode != "read" or (access.table, access.version) in self._seen:
            return
        self._seen.add((access.table, access.version))
        from mlflow.data.meta_dataset import MetaDataset

        source = _pinned_delta_source()(path=access.location, delta_table_version=access.version)
        dataset = MetaDataset(source=source, name=access.table, digest=f"v{access.version}")  # type: ignore[abstract]
        self._mlflow.log_input(dataset, context="input")


@functools.cache
def _pinned_delta_source() -> type:
    """MLflow's Delta dataset source, except that version 0 is kept (MLflow tests it for truth)."""
    from mlflow.data.delta_dataset_source import DeltaDatasetSource

    class PinnedDeltaSource(DeltaDatasetSource):
        def to_dict(self) -> dict[Any, Any]:
            return {**super().to_dict(), "delta_table_version": self._delta_table_version}

    return PinnedDeltaSource
