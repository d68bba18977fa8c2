"""Jobs on the local executor: what running a DAG through `ws.jobs` costs over bare processes.

lakestack: `ws.jobs.run_now(name)` of a 20-task diamond (one root, 18 tasks that depend on it,
one sink that depends on all 18) of no-op python function tasks, each attempt a process group
started by the LocalExecutor, with its task run recorded in the metastore. Anchor: the same DAG
as 20 bare `python -c "import steps; steps.noop()"` processes, started with the same
parallelism in the same order (root, the 18, the sink) by a thread pool. The difference is
lakestack's orchestration: state changes in the metastore, the attempt folder and task.json,
the task entry point's imports, and polling. Target: the whole DAG under 3 s (`p99_target`).
A second row runs a one-task job against one bare process: the fixed cost of a run.

Ray: the same diamond with `compute: ray`, on a local Ray cluster (`[jobs] ray_address =
"local"`: a Ray instance the bench process starts, one CPU per core; `LAKESTACK_RAY_ADDRESS`
points it at another cluster), its anchor the diamond on the local executor, paired in the same
run. Each attempt is then a Ray task that starts the same task process on a Ray worker. The
first Ray run, untimed, starts the cluster and its worker processes.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import Row, skipped, timed
from lakestack import Workspace
from lakestack.jobs.runner import default_parallelism

MIDDLE = 18
STEPS = "def noop():\n    pass\n"


def diamond_yaml(name: str = "diamond", compute: str = "local") -> str:
    task = "python_task: {function: 'steps:noop'}"
    lines = [f"name: {name}", f"compute: {compute}", "tasks:", f"  - {{task_key: root, {task}}}"]
    middle = [f"m{i:02d}" for i in range(MIDDLE)]
    lines += [f"  - {{task_key: {key}, depends_on: [{{task_key: root}}], {task}}}" for key in middle]
    sink = ", ".join(f"{{task_key: {key}}}" for key in middle)
    lines.append(f"  - {{task_key: sink, depends_on: [{sink}], {task}}}")
    return "\n".join(lines) + "\n"


def bare(project: Path) -> None:
    subprocess.run(
        [sys.executable, "-c", "import steps; steps.noop()"],
        cwd=project,
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )


def bare_diamond(project: Path, parallelism: int) -> None:
    bare(project)
    with ThreadPoolExecutor(parallelism) as pool:
        list(pool.map(lambda _: bare(project), range(MIDDLE)))
    bare(project)


def run(scale: str, repeats: int) -> list[Row]:
    del scale  # the DAG is the shape at every scale
    parallelism = default_parallelism()
    with tempfile.TemporaryDirectory(prefix="lakestack-bench-jobs-") as tmp:
        root = Path(tmp)
        project = root / "project"
        project.mkdir()
        (project / "steps.py").write_text(STEPS)
        (project / "diamond.yml").write_text(diamond_yaml())
        (project / "one.yml").write_text(
            "name: one\ntasks: [{task_key: t, python_task: {function: 'steps:noop'}}]\n"
        )
        ws = Workspace.init(root / "ws")
        ws.jobs.create(project / "diamond.yml")
        ws.jobs.create(project / "one.yml")

        def ours(name: str) -> None:
            state = ws.jobs.run_now(name).state
            assert state == "SUCCESS", f"bench job '{name}' ended {state}"

        ours("one")  # warm up: imports, SQLite, the page cache for the interpreter
        bare_diamond(project, parallelism)
        dag: tuple[list[float], list[float]] = ([], [])
        one: tuple[list[float], list[float]] = ([], [])
        for index in range(repeats):
            sides = [
                (dag[0], lambda: ours("diamond")),
                (dag[1], lambda: bare_diamond(project, parallelism)),
                (one[0], lambda: ours("one")),
                (one[1], lambda: bare(project)),
            ]
            order = [0, 1, 2, 3] if index % 2 == 0 else [1, 0, 3, 2]
            for side in order:
                seconds, _ = timed(sides[side][1])
                sides[side][0].append(seconds)
        ws.close()
    per_task = [(ls - pl) / (MIDDLE + 2) * 1000 for ls, pl in zip(*dag, strict=True)]
    print(
        f"jobs: parallelism {parallelism}; per-task overhead over a bare process (ms): "
        + ", ".join(f"{ms:.0f}" for ms in per_task),
        file=sys.stderr,
    )
    return [
        *run_ray(repeats),
        Row(
            f"job run: 20-task diamond of no-op python tasks, local executor (parallelism {parallelism})",
            dag[0],
            dag[1],
            p99_target=3.0,
            anchor="20 bare python processes, same DAG and parallelism",
        ),
        Row("job run: 1 no-op python task", one[0], one[1], p99_target=0.5, anchor="1 bare python process"),
    ]


def run_ray(repeats: int) -> list[Row]:
    """The diamond on a local Ray cluster against the diamond on the local executor."""
    name = "job run: 20-task diamond of no-op python tasks, Ray executor (local Ray cluster)"
    if importlib.util.find_spec("ray") is None:
        return [skipped(name, "ray is not installed: pip install -e '.[ray]'")]
    from lakestack.jobs.executors.ray import disconnect

    parallelism = default_parallelism()
    with tempfile.TemporaryDirectory(prefix="lakestack-bench-jobs-ray-") as tmp:
        root = Path(tmp)
        project = root / "project"
        project.mkdir()
        (project / "steps.py").write_text(STEPS)
        (project / "local.yml").write_text(diamond_yaml("local"))
        (project / "ray.yml").write_text(diamond_yaml("ray", compute="ray"))
        ws = Workspace.init(root / "ws")
        ws.close()
        config = root / "ws" / "workspace.toml"
        config.write_text(config.read_text() + '\n[jobs]\nray_address = "local"\n')
        ws = Workspace.open(root / "ws")
        ws.jobs.create(project / "local.yml")
        ws.jobs.create(project / "ray.yml")

        def ours(job: str) -> None:
            run = ws.jobs.run_now(job)
            assert run.state == "SUCCESS", f"bench job '{job}' ended {run.state}: {run.error}"

        try:
            seconds, _ = timed(lambda: ours("ray"))  # starts Ray and its workers
            print(f"jobs: the first Ray run (starting Ray) took {seconds:.1f} s", file=sys.stderr)
            ours("local")
            on_ray: list[float] = []
            local: list[float] = []
            for index in range(repeats):
                sides = [(on_ray, lambda: ours("ray")), (local, lambda: ours("local"))]
                for side in [0, 1] if index % 2 == 0 else [1, 0]:
                    seconds, _ = timed(sides[side][1])
                    sides[side][0].append(seconds)
        finally:
            ws.close()
            disconnect()
    per_task = [(r - loc) / (MIDDLE + 2) * 1000 for r, loc in zip(on_ray, local, strict=True)]
    print(
        "jobs: per-task overhead of Ray over the local executor (ms): "
        + ", ".join(f"{ms:.0f}" for ms in per_task),
        file=sys.stderr,
    )
    return [
        Row(
            f"{name[:-1]}, parallelism {parallelism})",
            on_ray,
            local,
            p99_target=3.0,
            anchor=f"the same DAG on the local executor (parallelism {parallelism})",
        )
    ]
