"""`lakestack models`, `experiments` and `runs`."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from lakestack.cli.context import workspace
from lakestack.cli.output import JsonFlag, console, emit, ok, print_json, print_rows

models = typer.Typer(
    help="Registered models named catalog.schema.model: versions, aliases, tags.", no_args_is_help=True
)
aliases = typer.Typer(help="Aliases such as champion and challenger.", no_args_is_help=True)
models.add_typer(aliases, name="alias")
experiments = typer.Typer(help="MLflow experiments, one per project.", no_args_is_help=True)
runs = typer.Typer(
    help="MLflow runs: parameters, metrics, code version and table inputs.", no_args_is_help=True
)

VERSION_COLUMNS = ["version", "aliases", "status", "run_id", "created_at", "tags"]


@models.command("ls")
def models_ls(schema: str, as_json: JsonFlag = False) -> None:
    """List the registered models of SCHEMA (catalog.schema)."""
    emit(
        workspace().models.list(schema),
        as_json,
        ["full_name", "owner", "comment", "created_at"],
        f"models in {schema}",
    )


@models.command("show")
def models_show(name: str, as_json: JsonFlag = False) -> None:
    """Describe a model: owner, aliases, latest version."""
    info = workspace().models.get(name)
    if as_json:
        print_json(info)
        return
    console.print(
        f"[bold]{info.name}[/bold]  owner {info.owner}  latest version {info.latest_version or '-'}"
    )
    for alias, version in sorted(info.aliases.items()):
        console.print(f"  @{alias} -> version {version}")


@models.command("versions")
def models_versions(name: str, as_json: JsonFlag = False) -> None:
    """Every version of a model, newest first."""
    emit(workspace().models.versions(name), as_json, VERSION_COLUMNS, f"versions of {name}")


@aliases.command("set")
def alias_set(name: str, alias: str, version: int, as_json: JsonFlag = False) -> None:
    """Point ALIAS (e.g. champion) at VERSION of model NAME (needs MANAGE)."""
    workspace().models.set_alias(name, alias, version)
    print_json({"model": name, "alias": alias, "version": version}) if as_json else ok(
        f"{name}@{alias} -> version {version}"
    )


@aliases.command("rm")
def alias_rm(name: str, alias: str, as_json: JsonFlag = False) -> None:
    """Remove an alias (needs MANAGE)."""
    workspace().models.delete_alias(name, alias)
    print_json({"model": name, "alias": alias, "removed": True}) if as_json else ok(f"Removed {name}@{alias}")


@models.command("tag")
def models_tag(name: str, version: int, key: str, value: str, as_json: JsonFlag = False) -> None:
    """Set tag KEY=VALUE on VERSION of model NAME (needs MANAGE)."""
    workspace().models.set_tag(name, version, key, value)
    print_json({"model": name, "version": version, key: value}) if as_json else ok(
        f"Tagged {name} version {version}: {key}={value}"
    )


@models.command("score")
def models_score(
    model_uri: str,
    input_table: str,
    output_table: str,
    mode: Annotated[
        str, typer.Option(help="append (keep every run), overwrite (this run only), merge (one row per key).")
    ] = "append",
    incremental: Annotated[
        bool, typer.Option("--incremental", help="Score only rows inserted or updated since the last run.")
    ] = False,
    keys: Annotated[
        str | None, typer.Option(help="Comma-separated key columns (default: the model's lookup keys).")
    ] = None,
    engine: Annotated[str, typer.Option(help="local, ray, or auto (ray inside a Ray job).")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Rows predicted at a time (bounds memory).")] = 100_000,
    as_json: JsonFlag = False,
) -> None:
    """Score INPUT_TABLE with MODEL_URI (e.g. models:/prod.churn.model@champion) into OUTPUT_TABLE."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lakestack.cli.output import errors

    columns = (TextColumn("Scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=errors, transient=True, disable=not errors.is_terminal) as bar:
        task = bar.add_task("score", total=None)
        result = workspace().models.score_table(
            model_uri,
            input_table,
            output_table,
            mode=mode,
            keys=[k.strip() for k in keys.split(",") if k.strip()] if keys else None,
            batch_size=batch_size,
            incremental=incremental,
            engine=engine,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if as_json:
        print_json(result.to_dict())
    elif result.output_version is None:
        ok(f"Nothing new in {result.input_table} (version {result.input_version}); {output_table} unchanged")
    else:
        ok(
            f"Scored {result.rows_scored} rows of {result.input_table} v{result.input_version} with "
            f"{result.model_name}/{result.model_version} into {result.output_table} "
            f"v{result.output_version} in {result.seconds:.1f}s"
        )


#: Exit code of `models validate` when the model fails validation (mode enabled).
VALIDATION_FAILED = 9


def _pairs(values: list[str], what: str) -> dict[str, float]:
    found = {}
    for value in values:
        metric, sep, number = value.partition("=")
        try:
            found[metric.strip()] = float(number)
        except ValueError:
            raise typer.BadParameter(f"{what} {value!r}: write METRIC=VALUE, e.g. roc_auc=0.6.") from None
        if not sep or not metric.strip():
            raise typer.BadParameter(f"{what} {value!r}: write METRIC=VALUE, e.g. roc_auc=0.6.")
    return found


@models.command("validate")
def models_validate(
    model_uri: Annotated[str, typer.Argument(help="models:/catalog.schema.model/VERSION (or @ALIAS).")],
    data: Annotated[str, typer.Option("--data", help="Held-out table catalog.schema.table (needs SELECT).")],
    label: Annotated[str, typer.Option("--label", help="The column holding the true values.")],
    problem_type: Annotated[
        str, typer.Option("--problem-type", help="classification or regression.")
    ] = "classification",
    threshold: Annotated[
        list[str] | None, typer.Option("--threshold", help="A bound, e.g. roc_auc>=0.7 (repeatable).")
    ] = None,
    min_improvement: Annotated[
        list[str] | None,
        typer.Option(
            "--min-improvement",
            help="Beat the champion by at least this: roc_auc=0.01, or roc_auc=1% (repeatable).",
        ),
    ] = None,
    baseline: Annotated[
        list[str] | None,
        typer.Option("--baseline", help="With no champion yet, compare with this value: roc_auc=0.6."),
    ] = None,
    slice_: Annotated[
        list[str] | None,
        typer.Option(
            "--slice",
            help="A per-slice bound: \"accuracy>=0.6 where region = 'north'\"; "
            '"... where region" checks each value (repeatable).',
        ),
    ] = None,
    require_tag: Annotated[
        list[str] | None, typer.Option("--require-tag", help="A tag the version must carry (repeatable).")
    ] = None,
    require_signature: Annotated[bool, typer.Option(help="The model must have a signature.")] = True,
    require_input_example: Annotated[
        bool, typer.Option(help="The model must have an input example.")
    ] = False,
    require_description: Annotated[bool, typer.Option(help="The version must have a description.")] = False,
    mode: Annotated[
        str, typer.Option(help="enabled (passing sets the alias), dry_run (report only) or disabled.")
    ] = "enabled",
    champion_alias: Annotated[str, typer.Option(help="The alias to compare against.")] = "champion",
    challenger_alias: Annotated[str, typer.Option(help="The alias a passing model gets.")] = "challenger",
    as_json: JsonFlag = False,
) -> None:
    """Validate a model version on a held-out table; in mode enabled a pass sets @challenger.

    Exit code 9 when the model fails (mode enabled); a dry run only reports.
    """
    from lakestack.models.validation.checks import Comparison, MetadataRequirements

    baselines = _pairs(baseline or [], "--baseline")
    comparisons = []
    for text in min_improvement or []:
        parsed = Comparison.parse(text)
        comparisons.append(Comparison.parse(text, baselines.get(parsed.metric)))
    result = workspace().models.validate(
        model_uri,
        data,
        label,
        problem_type,
        thresholds=threshold or [],
        comparisons=comparisons,
        slices=slice_ or [],
        metadata=MetadataRequirements(
            signature=require_signature,
            input_example=require_input_example,
            description=require_description,
            tags=tuple(require_tag or []),
        ),
        mode=mode,
        champion_alias=champion_alias,
        challenger_alias=challenger_alias,
    )
    if as_json:
        from lakestack.models.validation.report import to_json

        sys.stdout.write(to_json(result) + "\n")
    else:
        _print_validation(result)
    if result.status == "FAILED" and result.mode == "enabled":
        raise typer.Exit(VALIDATION_FAILED)


def _print_validation(result: Any) -> None:
    from rich.markup import escape  # slice names such as [region = 'a'] are not markup

    style = {"PASSED": "green", "FAILED": "red"}.get(result.status, "yellow")
    console.print(
        f"[bold]{escape(result.model_uri)}[/bold]: [{style}]{result.status}[/{style}] "
        f"(mode {result.mode}, {result.rows} rows of {escape(result.data or '-')})"
    )
    rows = [
        {
            "check": escape(c.name),
            "kind": c.kind,
            "verdict": "skipped" if c.skipped else ("pass" if c.passed else "[red]FAIL[/red]"),
            "value": None if c.value is None else round(c.value, 4),
            "threshold": c.threshold,
            "detail": escape(c.detail),
        }
        for c in result.checks
    ]
    print_rows(rows, ["check", "kind", "verdict", "value", "threshold", "detail"], "checks")
    names = sorted(set(result.metrics) | set(result.champion_metrics))
    champion = "-" if result.champion_version is None else f"champion v{result.champion_version}"

    def shown(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    metric_rows = [
        {
            "metric": n,
            "candidate": shown(result.metrics.get(n)),
            champion: shown(result.champion_metrics.get(n)),
        }
        for n in names
    ]
    print_rows(metric_rows, ["metric", "candidate", champion], "metrics")
    for note in result.notes:
        console.print(f"[dim]{escape(note)}[/dim]")
    if result.alias_set:
        ok(f"{result.model_name}@{result.alias_set} -> version {result.version}")
    if result.report_html_uri:
        console.print(f"Report: {escape(result.report_html_uri)}")


def _ms(timestamp: int | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp / 1000, tz=UTC)


@experiments.command("ls")
def experiments_ls(as_json: JsonFlag = False) -> None:
    """List the workspace's project experiments."""
    rows = [
        {
            "name": e.name,
            "experiment_id": e.experiment_id,
            "artifact_location": e.artifact_location,
            "created_at": _ms(e.creation_time),
        }
        for e in workspace().tracking.experiments()
    ]
    emit(rows, as_json, ["name", "experiment_id", "created_at", "artifact_location"], "experiments")


def _run_row(run: Any) -> dict[str, Any]:
    tags = run.data.tags
    return {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "status": run.info.status,
        "started": _ms(run.info.start_time),
        "commit": tags.get("mlflow.source.git.commit", "")[:10] or None,
        "principal": tags.get("lakestack.principal"),
        "metrics": run.data.metrics,
    }


@runs.command("ls")
def runs_ls(
    project: str,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """List the runs of PROJECT, newest first."""
    rows = [_run_row(r) for r in workspace().tracking.runs(project, limit)]
    emit(rows, as_json, ["run_id", "run_name", "status", "started", "commit", "principal", "metrics"], "runs")


@runs.command("show")
def runs_show(run_id: str, as_json: JsonFlag = False) -> None:
    """One run: parameters, metrics, code version and the table versions it read."""
    run = workspace().tracking.get_run(run_id)
    inputs = [{"table": d.dataset.name, **json.loads(d.dataset.source)} for d in run.inputs.dataset_inputs]
    data = {**_run_row(run), "params": run.data.params, "tags": run.data.tags, "inputs": inputs}
    if as_json:
        print_json(data)
        return
    for key in ("run_id", "run_name", "status", "started", "principal"):
        console.print(f"[bold]{key:>10}[/bold]  {data[key]}")
    console.print(
        f"[bold]{'code':>10}[/bold]  {run.data.tags.get('mlflow.source.git.commit', '-')} "
        f"({run.data.tags.get('mlflow.source.git.branch', '-')}, dirty: "
        f"{run.data.tags.get('lakestack.git.dirty', '-')})"
    )
    emit(
        [{"name": k, "value": v} for k, v in sorted(run.data.params.items())],
        False,
        ["name", "value"],
        "params",
    )
    emit(
        [{"name": k, "value": v} for k, v in sorted(run.data.metrics.items())],
        False,
        ["name", "value"],
        "metrics",
    )
    emit(inputs, False, ["table", "delta_table_version", "path"], "table inputs")
