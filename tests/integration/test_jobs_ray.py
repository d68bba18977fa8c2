"""A job with one task on Ray and one local, run through `ws.jobs`, the workspace pointing at a
real local Ray cluster (`[jobs] ray_address` in workspace.toml)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.jobs_project import make_project

from lakestack import Workspace
from lakestack.config import CONFIG_FILE

pytestmark = pytest.mark.xdist_group("ray")

PARENT = """
import os
from pathlib import Path

from lakestack.jobs import task_values


def parent():
    task_values.set("parent", Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\\0")[0].decode())
"""


@pytest.fixture
def ray_workspace(tmp_path: Path, ray_address: str) -> Iterator[Workspace]:
    """A SQLite workspace whose jobs run `compute: ray` tasks on the test cluster."""
    ws = Workspace.init(tmp_path / "ws")
    ws.close()
    config = tmp_path / "ws" / CONFIG_FILE
    config.write_text(config.read_text() + f'\n[jobs]\nray_address = "{ray_address}"\n')
    ws = Workspace.open(tmp_path / "ws")
    yield ws
    ws.close()


def test_a_ray_task_hands_its_values_to_a_local_task(ray_workspace: Workspace, tmp_path: Path) -> None:
    ws = ray_workspace
    project = make_project(tmp_path / "project")
    (project / "where.py").write_text(PARENT)
    (project / "job.yml").write_text(
        textwrap.dedent(
            """
            name: mixed
            tasks:
              - task_key: on_ray
                compute: ray
                python_task: {function: "steps:add_one", parameters: {n: 41}}
              - task_key: where_ray
                compute: ray
                python_task: {function: "where:parent"}
              - task_key: where_local
                python_task: {function: "where:parent"}
              - task_key: here
                depends_on: [{task_key: on_ray}]
                python_task:
                  function: "steps:add_one"
                  parameters: {n: "{{tasks.on_ray.values.n}}", key: m}
            """
        )
    )
    ws.jobs.create(project / "job.yml")
    run = ws.jobs.run_now("mixed")
    assert run.state == "SUCCESS", [(t.task_key, t.state, t.error) for t in run.tasks]
    assert run.task("on_ray").task_values == {"n": 42}
    assert run.task("here").task_values == {"m": 43}
    assert run.task("where_ray").task_values["parent"].startswith("ray::")  # under a Ray worker
    assert not run.task("where_local").task_values["parent"].startswith("ray::")
    # The Ray task's output is in its attempt folder like a local one's.
    assert set(ws.jobs.logs(run.run_id, "on_ray")) >= {"stdout", "stderr"}
