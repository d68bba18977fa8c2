"""`lakestack scheduler`: fire job schedules and triggers, and recover runs whose runner died."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from lakestack.cli.context import STATE, workspace
from lakestack.cli.jobs import drive_command
from lakestack.cli.output import JsonFlag, console, print_json
from lakestack.jobs.scheduler import Event


def scheduler(
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit (for cron or a test).")] = False,
    poll: Annotated[float, typer.Option(min=0.1, help="Seconds between passes.")] = 1.0,
    table_poll: Annotated[
        float, typer.Option(min=0.1, help="Seconds between checks of table-update triggers.")
    ] = 10.0,
    lease: Annotated[
        float,
        typer.Option(min=1, help="Seconds without a heartbeat before a run on another host counts as lost."),
    ] = 60.0,
    as_json: JsonFlag = False,
) -> None:
    """Start job runs on their schedules and triggers, until Ctrl-C or SIGTERM.

    Each tick starts exactly one run, even with several schedulers on one metastore or across
    restarts. Runs go on in processes of their own, so stopping the scheduler stops no run.
    Runs whose runner died are marked FAILED, or repaired when the lost task has retries left.
    Needs an admin. Example: lakestack scheduler --poll 5
    """
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)  # first: a stop while starting up is a clean stop
    ws = workspace()
    runs = ws.scheduler(
        detach=drive_command(STATE.path),
        poll_seconds=poll,
        table_poll_seconds=table_poll,
        lease_seconds=lease,
    )

    def show(event: Event) -> None:
        if as_json:
            print_json(event)
        else:
            console.print(f"{event.action:9} job '{event.job_name}' run {event.run_id}: {event.detail}")

    if once:
        for event in runs.run_once():
            show(event)
        return
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    if not as_json:
        console.print(f"Scheduler watching '{ws.folder}' every {poll:g} s (Ctrl-C stops it)")
    with contextlib.suppress(KeyboardInterrupt):
        runs.serve(stop, show)
