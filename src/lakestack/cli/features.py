"""`lakestack features`: publish feature tables to the online store and look features up by key."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import timedelta
from typing import Annotated

import typer

from lakestack.cli.context import split_csv, workspace
from lakestack.cli.output import JsonFlag, console, ok, print_arrow, print_json, working
from lakestack.errors import InvalidParameter

app = typer.Typer(
    help="Feature tables: publish to the online store (SQLite, or Redis), look features up by key.",
    no_args_is_help=True,
)

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")

Features = Annotated[
    list[str] | None,
    typer.Option("--feature", "-f", help="Only these features (comma-separated or repeated)."),
]


def parse_ttl(text: str) -> timedelta:
    """`90s`, `30m`, `12h`, `7d`, `2w` (or combined: `1d12h`) as a timedelta."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise InvalidParameter(f"--ttl {text!r} is not a duration: use e.g. 90s, 30m, 12h, 7d, 2w or 1d12h.")
    ttl = timedelta()
    for number, unit in parts:
        ttl += timedelta(**{_UNITS[unit]: float(number)})
    if ttl <= timedelta(0):
        raise InvalidParameter(f"--ttl {text!r} must be longer than zero.")
    return ttl


@app.command()
def publish(
    name: str,
    mode: Annotated[
        str, typer.Option(help="incremental (the change feed since the last publish) or snapshot (all).")
    ] = "incremental",
    ttl: Annotated[
        str | None,
        typer.Option(help="Serve values up to this old, e.g. 7d or 12h (default: keep the published TTL)."),
    ] = None,
    features: Features = None,
    as_json: JsonFlag = False,
) -> None:
    """Publish feature table NAME's newest values to the online store (needs MODIFY)."""
    if mode not in ("incremental", "snapshot"):
        raise InvalidParameter(f"--mode {mode!r}: use incremental or snapshot.")
    duration = parse_ttl(ttl) if ttl is not None else None
    with working(f"Publishing {name}"):
        result = workspace().features.publish_table(name, mode, duration, split_csv(features) or None)
    if as_json:
        print_json({**result.__dict__, "up_to_date": result.up_to_date})
        return
    if result.up_to_date:
        ok(f"{result.table} is up to date in the online store (version {result.to_version})")
        return
    versions = (
        f"version {result.to_version}"
        if result.from_version is None
        else f"versions {result.from_version}-{result.to_version}"
    )
    deleted = f", deleted {result.keys_deleted} key(s)" if result.keys_deleted else ""
    ok(
        f"Published {result.table} ({result.mode}, {versions}) to {result.store}: "
        f"{result.rows_written} row(s) written{deleted} in {result.seconds:.2f} s"
    )
    if result.fallback_reason:
        console.print(f"  [yellow]ran as a snapshot:[/yellow] {result.fallback_reason}", highlight=False)


@app.command()
def lookup(
    name: str,
    key: Annotated[
        list[str],
        typer.Option(
            "--key",
            "-k",
            help="COLUMN=VALUE. Give each key column once per row: --key store=a --key sku=1 is one "
            "row; --key id=1 --key id=2 are two.",
        ),
    ],
    features: Features = None,
    as_json: JsonFlag = False,
) -> None:
    """Look up the online features of published table NAME by key (needs SELECT)."""
    columns: dict[str, list[str]] = defaultdict(list)
    for item in key:
        column, sep, value = item.partition("=")
        if not sep or not column.strip():
            raise InvalidParameter(f"--key {item!r}: use COLUMN=VALUE, e.g. --key customer_id=42.")
        columns[column.strip()].append(value)
    counts = {len(values) for values in columns.values()}
    if len(counts) != 1:
        given = ", ".join(f"{c} x{len(v)}" for c, v in columns.items())
        raise InvalidParameter(f"Every key column needs the same number of --key values ({given}).")
    rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    table = workspace().features.get_online_features(name, rows, split_csv(features) or None)
    print_arrow(table, "json" if as_json else "table")


@app.command()
def unpublish(name: str, as_json: JsonFlag = False) -> None:
    """Remove feature table NAME from the online store (needs MODIFY); the Delta table stays."""
    removed = workspace().features.unpublish_table(name)
    if as_json:
        print_json({"table": name, "removed": removed})
        return
    ok(f"Removed {name} from the online store" if removed else f"{name} was not published")
