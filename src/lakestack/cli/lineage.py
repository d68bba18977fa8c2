"""`lakestack lineage`: the chain from table versions and code commits to a model or table."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.tree import Tree

from lakestack.cli.context import workspace
from lakestack.cli.output import JsonFlag, console, print_json
from lakestack.lineage.service import LineageGraph
from lakestack.lineage.store import Node


def lineage(
    target: Annotated[
        str,
        typer.Argument(
            help="A table, a model (NAME@ALIAS, NAME/VERSION, models:/...), run:RUN_ID or "
            "job_run:JOB#RUN_ID/TASK."
        ),
    ],
    version: Annotated[int | None, typer.Option(help="Table (or model) version to start from.")] = None,
    downstream: Annotated[bool, typer.Option("--downstream", help="Follow what TARGET went into.")] = False,
    depth: Annotated[int, typer.Option(min=1, help="How many steps to follow.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """Show lineage: by default what went into TARGET, with --downstream what came out of it.

    Lineage is recorded for code run inside ws.tracking.start_run and for job tasks.
    It links table versions read and written, training sets, commits and model versions.
    Objects you have no access to are shown as hidden.

    Examples:

      lakestack lineage prod.churn.model@champion   (what made the champion)

      lakestack lineage dev.churn.customer_activity --version 3

      lakestack lineage dev.silver.transactions --downstream   (what was made from it)

      lakestack lineage run:RUN_ID   (one run's inputs and outputs)

      lakestack lineage "job_run:nightly#12/train"   (what task train of job run 12 read and wrote)
    """
    ws = workspace()
    walk = ws.lineage.downstream if downstream else ws.lineage.upstream
    graph = walk(target, version=version, depth=depth)
    if as_json:
        print_json(graph.to_dict())
        return
    console.print(render(graph))
    if len(graph.nodes) == 1:
        console.print(
            "[dim]No lineage recorded yet: lineage is captured for code run inside "
            "ws.tracking.start_run(...).[/dim]"
        )


def render(graph: LineageGraph) -> Tree:
    """The graph as a tree from its root; a node reached twice is expanded only the first time."""
    arrow = "<-" if graph.direction == "upstream" else "->"
    tree = Tree(_label(graph.root))
    shown = {0}

    def grow(branch: Tree, index: int) -> None:
        for nxt in graph.next_of(index):
            if nxt in shown:
                branch.add(f"[dim]{arrow}[/dim] {_label(graph.nodes[nxt])} [dim](see above)[/dim]")
                continue
            shown.add(nxt)
            grow(branch.add(f"[dim]{arrow}[/dim] {_label(graph.nodes[nxt])}"), nxt)

    grow(tree, 0)
    return tree


def _label(node: Node) -> str:
    if node.hidden:
        return f"[dim]{node.ref.kind} (hidden: you have no access)[/dim]"
    props: dict[str, Any] = node.properties
    extra = ""
    if node.ref.kind == "run":
        extra = f"  {props.get('experiment', '')} {props.get('run_name', '')}".rstrip()
        if props.get("git_dirty") == "true":
            extra += "  [yellow](uncommitted changes)[/yellow]"
    elif node.ref.kind == "commit":
        extra = f"  on {props['branch']}" if props.get("branch") else ""
    elif node.ref.kind == "training_set":
        labels = ", ".join(props.get("label") or [])
        extra = f"  label {labels}, {props.get('rows')} rows" if labels else ""
    return f"[bold]{node.ref}[/bold]{extra}"
