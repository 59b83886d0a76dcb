"""``personas-warehouse demo``: a simulated day synced into DuckDB, then the past rebuilt.

It builds the database in a temporary file beside the target and moves it into place only when
every sync succeeded, so an interrupted demo leaves nothing half-written. An existing file at
the target is replaced only when it is an earlier demo database.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TextIO

import attrs
from sqlglot import exp

from personas_warehouse.cli.commands import (
    audience_sizes,
    change_table,
    format_table,
    format_value,
    state_table,
)
from personas_warehouse.cli.inputs import UsageError
from personas_warehouse.cli.simulation import DEMO_SCHEMA, DEMO_START, demo_space, simulate
from personas_warehouse.cli.spacefile import dump
from personas_warehouse.log import Change
from personas_warehouse.model import Space, UserState
from personas_warehouse.naming import column_names
from personas_warehouse.runner.connections import connect_url
from personas_warehouse.runner.warehouse import Warehouse
from personas_warehouse.sql.render import render
from personas_warehouse.sql.tables import USERS, table

__all__ = ["RECEIVED_AFTER", "fold_history", "pick_user", "run"]

RECEIVED_AFTER: Final = dt.timedelta(seconds=90)
"""Each simulated run is received this long after its ``at`` (a deterministic clock)."""


def fold_history(
    space: Space, user_id: str, changes: Sequence[Change], ts: dt.datetime
) -> UserState:
    """The state a change history implies at ``ts``: for every key, its last change by then.

    >>> import datetime as dt
    >>> from personas_warehouse.model import Audience, Space
    >>> t = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    >>> changes = [Change("u1", t, t, "m1", "vip", None, True)]
    >>> fold_history(Space(audiences=[Audience("vip")]), "u1", changes, t).audiences
    {'vip': True}
    """
    values: dict[str, Any] = dict.fromkeys(space.keys)
    for change in changes:
        if change.timestamp <= ts:
            values[change.key] = change.new
    return UserState(
        user_id,
        {key: values[key] for key in space.trait_keys},
        {key: values[key] for key in space.audience_keys},
    )


def pick_user(histories: dict[str, list[Change]]) -> str:
    """The user with the most changes (the smallest id among equals): the liveliest story."""
    return min(histories, key=lambda user: (-len(histories[user]), user))


def _check_target(target: Path) -> None:
    if not target.parent.is_dir():
        raise UsageError(f"--path {target}: the directory {str(target.parent)!r} does not exist")
    if not target.exists():
        return
    if target.is_dir():
        raise UsageError(f"--path {target} is a directory; name a .duckdb file")
    try:
        connection = connect_url(f"duckdb:///{target}")
    except Exception as err:  # not a DuckDB file (or a locked one): never overwrite it
        raise UsageError(
            f"--path {target} exists and is not a demo database ({' '.join(str(err).split())}); "
            "choose another --path"
        ) from None
    try:
        is_demo = "sync_runs" in connection.tables(DEMO_SCHEMA)
    finally:
        connection.close()
    if not is_demo:
        raise UsageError(
            f"--path {target} exists and is not a demo database (no schema {DEMO_SCHEMA!r}); "
            "choose another --path, or remove the file"
        )


def _remove(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def _fixed_clock(moment: dt.datetime) -> Callable[[], dt.datetime]:
    """A clock that always says ``moment`` (so the demo's ``received_at`` are reproducible)."""

    def clock() -> dt.datetime:
        return moment

    return clock


def _build(path: Path, space: Space, seed: int, users: int, hours: int) -> int:
    """Run the simulated syncs into a new DuckDB file; returns the rows written."""
    connection = connect_url(f"duckdb:///{path}")
    try:
        warehouse = Warehouse(connection, space, dialect="duckdb")
        warehouse.setup()
        written = 0
        for at, results in simulate(seed=seed, users=users, hours=hours):
            result = warehouse.sync(results, at=at, clock=_fixed_clock(at + RECEIVED_AFTER))
            written += result.rows_written
        connection.execute("CHECKPOINT")
    finally:
        connection.close()
    return written


def _users_rows(warehouse: Warehouse) -> tuple[list[str], list[list[Any]]]:
    space = warehouse.space
    names = column_names(space, warehouse.caps)
    columns = ["id", *[names[key] for key in space.keys], "timestamp"]
    select = (
        exp.select(*[exp.column(c) for c in columns])
        .from_(table(space, USERS))
        .order_by(exp.column("id"))
    )
    rows = warehouse.connection.query(render(select, warehouse.caps))
    return columns, [list(row) for row in rows]


@attrs.frozen
class _Findings:
    """What the demo read back from its database."""

    columns: list[str]
    rows: list[list[Any]]
    user: str
    changes: list[Change]
    past: dt.datetime
    rebuilt: UserState
    implied: UserState
    times: list[dt.datetime]
    sizes: dict[str, list[tuple[dt.datetime, int]]]
    sizes_in_python: dict[str, list[tuple[dt.datetime, int]]]

    @property
    def agree(self) -> bool:
        """Whether both checks hold (rebuilt == history folded; SQL sizes == Python sizes)."""
        return self.rebuilt == self.implied and self.sizes == self.sizes_in_python


def _gather(target: Path, space: Space, hours: int) -> _Findings:
    """Read the users table, pick a user, rebuild them at a past hour, count the audiences."""
    past = DEMO_START + dt.timedelta(hours=hours // 2)
    times = [DEMO_START + dt.timedelta(hours=h) for h in range(hours)]
    connection = connect_url(f"duckdb:///{target}")
    try:
        warehouse = Warehouse(connection, space, dialect="duckdb")
        columns, rows = _users_rows(warehouse)
        log = warehouse.load_log()
        histories = {user: log.history(user) for user in log.users()}
        user = pick_user(histories)
        return _Findings(
            columns=columns,
            rows=rows,
            user=user,
            changes=histories[user],
            past=past,
            rebuilt=warehouse.reconstruct_state(user, past),
            implied=fold_history(space, user, histories[user], past),
            times=times,
            sizes={key: audience_sizes(warehouse, key, times) for key in space.audience_keys},
            sizes_in_python={key: log.audience_size(key, times) for key in space.audience_keys},
        )
    finally:
        connection.close()


def _report(out: TextIO, found: _Findings, space: Space, space_file: Path, db: str) -> None:
    out.write(f"== 1. The users table ({len(found.rows)} rows) ==\n")
    out.write(format_table(found.columns, found.rows) + "\n\n")
    out.write(f"== 2. The history of {found.user} ({len(found.changes)} changes) ==\n")
    out.write(change_table(found.changes) + "\n\n")
    past = format_value(found.past)
    out.write(f"== 3. {found.user} rebuilt by the warehouse at {past} ==\n")
    out.write(state_table(found.rebuilt, found.past) + "\n")
    verdict = "matches" if found.implied == found.rebuilt else "DOES NOT MATCH"
    out.write(f"check: the rebuilt state {verdict} the history above folded up to {past}\n\n")
    out.write("== 4. Audience sizes over the day ==\n")
    size_rows = [
        [moment, *[found.sizes[key][index][1] for key in space.audience_keys]]
        for index, moment in enumerate(found.times)
    ]
    out.write(format_table(["time", *space.audience_keys], size_rows) + "\n")
    agree = "gives the same sizes" if found.sizes == found.sizes_in_python else "GIVES OTHER SIZES"
    out.write(f"check: the identifies log, rebuilt in Python, {agree}\n\n")
    out.write(
        "Try next:\n"
        f"  personas-warehouse reconstruct --space {space_file} --database {db} "
        f"--user {found.user} --at {past}\n"
        f"  personas-warehouse audience-size --space {space_file} --database {db} "
        f"--audience recent_buyers --from {format_value(found.times[0])} "
        f"--to {format_value(found.times[-1])} --svg recent_buyers.svg\n"
    )


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Build the demo database, then print the four views (see docs/cli.md).

    Exit code 1 if either check fails (the rebuilt past or the audience sizes disagree): that
    would be a bug, and the demo says so rather than hiding it.
    """
    if args.users < 1 or args.hours < 2:
        raise UsageError("--users must be at least 1 and --hours at least 2")
    target = Path(args.path)
    _check_target(target)
    space = demo_space()
    building = target.with_name(f".{target.name}.building")
    _remove(building)
    try:
        written = _build(building, space, args.seed, args.users, args.hours)
    except BaseException:
        _remove(building)
        raise
    _remove(target)
    building.replace(target)
    space_file = target.with_name(f"{target.stem}.space.toml")
    dump(space, space_file)
    found = _gather(target, space, args.hours)
    out.write(
        f"personas-warehouse demo: {args.hours} hourly syncs of {args.users} simulated users "
        f"(seed {args.seed}) into {target}, schema {DEMO_SCHEMA!r}; {written} rows written\n"
        f"space file: {space_file}\n\n"
    )
    _report(out, found, space, space_file, f"duckdb:///{target}")
    return 0 if found.agree else 1
