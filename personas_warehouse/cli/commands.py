"""The subcommands: each takes the parsed arguments and stdout, and returns an exit code."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, TextIO
from urllib.parse import urlsplit, urlunsplit

import attrs
from sqlglot import exp

from personas_warehouse.cli.inputs import (
    UsageError,
    as_json,
    iter_times,
    parse_duration,
    parse_timestamp,
    read_results,
)
from personas_warehouse.cli.progress import ProgressBar
from personas_warehouse.cli.spacefile import load_space
from personas_warehouse.cli.svg import line_chart
from personas_warehouse.errors import PersonasWarehouseError
from personas_warehouse.log import Change
from personas_warehouse.model import Space, UserState
from personas_warehouse.naming import column_names
from personas_warehouse.runner.connections import Connection, connect_url
from personas_warehouse.runner.warehouse import SyncProgress, SyncResult, SyncRun, Warehouse
from personas_warehouse.sql.ddl import create_statements
from personas_warehouse.sql.query import as_of_query, audience_size_query
from personas_warehouse.sql.render import UnsupportedSQLError, render
from personas_warehouse.sql.tables import IDENTIFIES, SYNC_RUNS, USERS, table
from personas_warehouse.sync import utc_now
from personas_warehouse.warehouses import capabilities

__all__ = [
    "MAX_POINTS",
    "as_of",
    "audience_size",
    "audience_sizes",
    "change_table",
    "check_user",
    "database_url",
    "ddl",
    "format_table",
    "format_value",
    "history",
    "migrate",
    "open_database",
    "open_warehouse",
    "reconstruct",
    "state_table",
    "sync",
    "validate",
]

logger = logging.getLogger("personas_warehouse.cli")

_FILE_SCHEMES: Final = {
    ".duckdb": "duckdb",
    ".ddb": "duckdb",
    ".db": "sqlite",
    ".sqlite": "sqlite",
    ".sqlite3": "sqlite",
}
_EMBEDDED: Final = ("duckdb", "sqlite")


# --------------------------------------------------------------------------------------------
# Printing
# --------------------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """A value as the tables print it: SQL-like ``null``/``true``/``false``, ISO time stamps.

    >>> [format_value(v) for v in (None, True, 1.5, "a", {"k": [1]}, "two\\nlines")]
    ['null', 'true', '1.5', 'a', '{"k": [1]}', '"two\\\\nlines"']
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str) and not value.isprintable():
        return json.dumps(value, ensure_ascii=False)  # quoted, so a newline cannot break a row
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as an aligned plain-text table (values through :func:`format_value`).

    >>> print(format_table(["id", "vip"], [["u1", True], ["u10", None]]))
    id   vip
    ---  ----
    u1   true
    u10  null
    """
    cells = [[format_value(value) for value in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def _print_json(out: TextIO, value: Any) -> None:
    out.write(json.dumps(as_json(value), ensure_ascii=False, indent=2) + "\n")


def _timestamp(args: argparse.Namespace, name: str, option: str) -> dt.datetime | None:
    text = getattr(args, name, None)
    return None if text is None else parse_timestamp(text, option)


# --------------------------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------------------------


def database_url(text: str) -> str:
    """A connection URL; a bare file path is taken by its extension.

    >>> database_url("demo.duckdb"), database_url("/tmp/x.db"), database_url("postgresql://h/db")
    ('duckdb:///demo.duckdb', 'sqlite:////tmp/x.db', 'postgresql://h/db')
    """
    if "://" in text:
        return text
    scheme = _FILE_SCHEMES.get(Path(text).suffix.lower())
    if scheme is None:
        raise UsageError(
            f"--database {text!r} is not a URL; write duckdb:///path.duckdb, sqlite:///path.db "
            "or postgresql://user@host:5432/db"
        )
    return f"{scheme}:///{text}"


def _safe_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _file_path(url: str) -> str | None:
    """The file of an embedded-database URL (``None``: a server, or in memory)."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() in _EMBEDDED and rest.startswith("/") and rest[1:]:
        return rest[1:]
    return None


def open_database(text: str, *, must_exist: bool) -> Connection:
    """Open ``--database``; a read on a file that does not exist is an error, not a new file."""
    url = database_url(text)
    shown = _safe_url(url)
    scheme = url.partition("://")[0].lower()
    path = _file_path(url)
    if must_exist and scheme in _EMBEDDED and path is None:
        raise UsageError(
            f"--database {shown} is an empty in-memory database; pass the file the sync wrote, "
            f"e.g. {scheme}:///personas.{scheme}"
        )
    if path is not None:
        if must_exist and not os.path.exists(path):
            raise UsageError(
                f"--database {shown}: no such file {path!r}; run `personas-warehouse sync` first "
                "or check the path"
            )
        parent = os.path.dirname(path) or "."
        if not os.path.isdir(parent):
            raise UsageError(
                f"--database {shown}: the directory {parent!r} does not exist; create it first"
            )
    try:
        return connect_url(url)
    except PersonasWarehouseError:
        raise
    except Exception as err:  # any driver's failure to connect is bad input here
        message = " ".join(str(err).split()) or type(err).__name__
        password = urlsplit(url).password
        if password:
            message = message.replace(password, "***")
        raise UsageError(
            f"--database {shown}: cannot connect ({message}); check the URL, that the server "
            "is running and that the user may log in"
        ) from err


# --------------------------------------------------------------------------------------------
# Commands that need no database
# --------------------------------------------------------------------------------------------


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def validate(args: argparse.Namespace, out: TextIO) -> int:
    """``validate SPACE.toml [--dialect D]``: parse, check for ``D``, and summarise a space."""
    space = load_space(args.space)
    caps = capabilities(args.dialect)
    create_statements(space, caps)  # the warehouse's limits: schema name, columns per table
    names = column_names(space, caps)
    out.write(
        f"{args.space}: ok for {caps.sqlglot_dialect}: schema {space.schema!r}, "
        f"{_count(len(space.traits), 'trait')}, {_count(len(space.audiences), 'audience')}\n"
    )
    kinds = [(t.key, "trait", t.type.value) for t in space.traits]
    kinds += [(a.key, "audience", "boolean") for a in space.audiences]
    rows = [
        [key, kind, type_, names.get(key, "-"), "no" if key in space.excluded else "yes"]
        for key, kind, type_ in kinds
    ]
    if rows:
        out.write(format_table(["key", "kind", "type", "column", "synced"], rows) + "\n")
    tables = [
        name for name, on in ((USERS, space.sync_users), (IDENTIFIES, space.sync_identifies)) if on
    ]
    out.write(f"tables synced: {', '.join(tables)}\n")
    return 0


def ddl(args: argparse.Namespace, out: TextIO) -> int:
    """``ddl --space --dialect``: print the CREATE statements."""
    space = load_space(args.space)
    statements = create_statements(space, args.dialect)
    out.write("".join(f"{statement};\n" for statement in statements))
    return 0


def migrate(args: argparse.Namespace, out: TextIO) -> int:
    """``migrate --from --to --dialect``: print the statements that evolve the tables."""
    old, new = load_space(args.old), load_space(args.new)
    capabilities(args.dialect)
    from personas_warehouse.sql.ddl import migrate_statements  # noqa: PLC0415

    statements = migrate_statements(old, new, args.dialect)
    if not statements:
        out.write("-- nothing to migrate: the tables of both spaces are the same\n")
    out.write("".join(f"{statement};\n" for statement in statements))
    return 0


def as_of(args: argparse.Namespace, out: TextIO) -> int:
    """``as-of --space --at --dialect [--known-at]``: print the rebuilding query."""
    space = load_space(args.space)
    at = parse_timestamp(args.at, "--at")
    known_at = _timestamp(args, "known_at", "--known-at")
    capabilities(args.dialect)
    out.write(as_of_query(space, at, args.dialect, known_at=known_at) + ";\n")
    return 0


# --------------------------------------------------------------------------------------------
# Commands on a warehouse
# --------------------------------------------------------------------------------------------


def _attached_file(connection: Connection, schema: str) -> str | None:
    """Where an engine without schemas (SQLite) keeps ``schema``: a file beside the main one.

    The convention is :meth:`SQLiteConnection.create_schema`'s; ``None`` for an in-memory main.
    """
    rows = connection.query("PRAGMA database_list")
    attached = {name: path for _, name, path in rows}
    if schema in attached:
        return None
    main = attached.get("main") or ""
    return f"{os.path.splitext(main)[0]}.{schema}.sqlite" if main else None


def _check_tables(connection: Connection, space: Space, shown: str) -> None:
    """A read needs the space's tables: say which are missing, and how to make them."""
    caps = capabilities(connection.kind)  # every connection kind is a dialect name
    if not caps.schemas:
        path = _attached_file(connection, space.schema)
        if path is not None and not os.path.exists(path):
            raise UsageError(
                f"--database {shown} has no schema {space.schema!r} (no file {path!r}); run "
                "`personas-warehouse sync` with this space first, or pass the space file the "
                "database was synced with"
            )
        connection.create_schema(space.schema)
    try:
        tables = set(connection.tables(space.schema))
    except Exception:  # engines differ in how they report a missing schema
        tables = set()
    wanted = [
        name for name, on in ((USERS, space.sync_users), (IDENTIFIES, space.sync_identifies)) if on
    ]
    missing = [name for name in [*wanted, SYNC_RUNS] if name not in tables]
    if missing:
        raise UsageError(
            f"--database {shown} has no {', '.join(missing)} table in schema {space.schema!r}; "
            "run `personas-warehouse sync` with this space first, or pass the space file the "
            "database was synced with"
        )


@contextmanager
def open_warehouse(database: str, space: Space, *, must_exist: bool) -> Iterator[Warehouse]:
    """``--database`` as a :class:`Warehouse` of ``space``, closed on the way out.

    A read (``must_exist``) needs the space's tables to be there already and creates nothing. A
    command that fails leaves no new database file behind.
    """
    url = database_url(database)
    path = _file_path(url)
    new_files: list[str] = []
    if path is not None:
        candidates = [path, f"{path}.wal", f"{os.path.splitext(path)[0]}.{space.schema}.sqlite"]
        new_files = [name for name in candidates if not os.path.exists(name)]
    connection = open_database(database, must_exist=must_exist)
    try:
        if must_exist:
            _check_tables(connection, space, _safe_url(url))
        yield Warehouse(connection, space)  # the dialect of the connection's engine
    except BaseException:
        connection.close()
        if path is not None and path in new_files:  # the command made the database: unmake it
            for leftover in new_files:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(leftover)
        raise
    connection.close()


def _needs_log(space: Space, command: str) -> None:
    if not space.sync_identifies:
        raise UsageError(
            f"{command} rebuilds from the identifies log, and this space does not sync it "
            "([sync] identifies = false); enable it to keep history"
        )


def check_user(warehouse: Warehouse, user: str) -> None:
    """A user with no event at all is an error (a typo is likelier than a user never seen)."""
    caps = warehouse.caps
    select = (
        exp.select(exp.column("user_id"))
        .from_(table(warehouse.space, IDENTIFIES))
        .where(exp.column("user_id").eq(exp.Literal.string(user)))
        .limit(1)
    )
    if not warehouse.connection.query(render(select, caps)):
        raise UsageError(
            f"--user {user!r} has no events in schema {warehouse.space.schema!r}; check the id "
            "(the users table lists them)"
        )


def _audiences_option(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [key.strip() for key in text.split(",") if key.strip()]


def _print_run(out: TextIO, result: SyncResult) -> None:
    run = result.run
    out.write(
        f"sync {run.run_id} at {format_value(run.at)}: {result.plan.users_changed} users "
        f"changed, {result.events_written} events and {result.users_written} users rows written\n"
    )
    rows = [
        [key, counts.entered, counts.exited, counts.changed]
        for key, counts in run.counts.items()
        if counts.entered or counts.exited or counts.changed
    ]
    if rows:
        out.write(format_table(["key", "entered", "exited", "changed"], rows) + "\n")


def sync(args: argparse.Namespace, out: TextIO) -> int:
    """``sync``: read a results file whole, then write its changes in one transaction."""
    space = load_space(args.space)
    at = parse_timestamp(args.at, "--at") if args.at is not None else utc_now()
    results = read_results(args.input, space, _audiences_option(args.audiences))
    bar = ProgressBar(sys.stderr, enabled=False if args.no_progress else None)

    def progress(report: SyncProgress) -> None:
        bar.update(report.stage, report.done, report.total)

    with open_warehouse(args.database, space, must_exist=False) as warehouse:
        warehouse.setup()
        try:
            result = warehouse.sync(results, at=at, progress=progress)
        finally:
            bar.finish()
    _print_run(out, result)
    return 0


def reconstruct(args: argparse.Namespace, out: TextIO) -> int:
    """``reconstruct``: one user's state at ``--at``, rebuilt by the warehouse."""
    space = load_space(args.space)
    _needs_log(space, "reconstruct")
    at = parse_timestamp(args.at, "--at")
    known_at = _timestamp(args, "known_at", "--known-at")
    with open_warehouse(args.database, space, must_exist=True) as warehouse:
        check_user(warehouse, args.user)
        state = warehouse.reconstruct_state(args.user, at, known_at=known_at)
    if args.json:
        document = {
            "user_id": state.user_id,
            "at": at,
            "known_at": known_at,
            "traits": dict(state.traits),
            "audiences": dict(state.audiences),
        }
        _print_json(out, document)
        return 0
    out.write(state_table(state, at, known_at) + "\n")
    return 0


def state_table(state: UserState, at: dt.datetime, known_at: dt.datetime | None = None) -> str:
    """A user's state as the command line prints it: a title line, then key / kind / value."""
    when = format_value(at) + (f", as known at {format_value(known_at)}" if known_at else "")
    rows = [[key, "trait", value] for key, value in state.traits.items()]
    rows += [[key, "audience", value] for key, value in state.audiences.items()]
    return f"user {state.user_id} at {when}\n" + format_table(["key", "kind", "value"], rows)


def change_table(changes: Sequence[Change]) -> str:
    """A change history as the command line prints it."""
    rows = [[c.timestamp, c.key, c.old, c.new, c.received_at, c.message_id] for c in changes]
    return format_table(["timestamp", "key", "old", "new", "received_at", "message_id"], rows)


def _print_runs(out: TextIO, runs: Sequence[SyncRun], *, as_json: bool) -> None:
    if as_json:
        _print_json(
            out,
            [
                {
                    "run_id": run.run_id,
                    "at": run.at,
                    "started_at": run.started_at,
                    "finished_at": run.finished_at,
                    "status": run.status,
                    "rows_written": run.rows_written,
                    "counts": {key: c.as_dict() for key, c in run.counts.items()},
                    "error": run.error,
                }
                for run in runs
            ],
        )
        return
    out.write(f"{len(runs)} sync runs\n")
    rows = [
        [run.at, run.status, run.rows_written, run.started_at, run.finished_at, run.run_id]
        for run in runs
    ]
    out.write(
        format_table(["at", "status", "rows", "started_at", "finished_at", "run_id"], rows) + "\n"
    )
    for run in runs:
        if run.error:
            out.write(f"run {run.run_id} failed: {run.error}\n")


def history(args: argparse.Namespace, out: TextIO) -> int:
    """``history``: a user's changes, or (without ``--user``) the sync runs."""
    space = load_space(args.space)
    if args.user is None:
        with open_warehouse(args.database, space, must_exist=True) as warehouse:
            runs = warehouse.history()
        _print_runs(out, runs, as_json=args.json)
        return 0
    _needs_log(space, "history --user")
    with open_warehouse(args.database, space, must_exist=True) as warehouse:
        check_user(warehouse, args.user)
        changes = warehouse.load_log().history(args.user)
    if args.json:
        _print_json(out, [attrs.asdict(change) for change in changes])
        return 0
    out.write(f"user {args.user}: {len(changes)} changes\n{change_table(changes)}\n")
    return 0


MAX_POINTS: Final = 10_000
"""The most points ``audience-size`` computes (a guard against ``--every 1s`` over a year)."""
SIZES_PER_QUERY: Final = 100
"""Points per audience-size query (each point is one column of the query's single row)."""


def audience_sizes(
    warehouse: Warehouse,
    audience: str,
    times: Sequence[dt.datetime],
    known_at: dt.datetime | None = None,
) -> list[tuple[dt.datetime, int]]:
    """The members of ``audience`` at each of ``times``, counted by the warehouse itself."""
    sizes: list[tuple[dt.datetime, int]] = []
    for start in range(0, len(times), SIZES_PER_QUERY):
        chunk = list(times[start : start + SIZES_PER_QUERY])
        try:
            sql = audience_size_query(warehouse.space, audience, chunk, warehouse.caps, known_at)
        except UnsupportedSQLError as err:
            logger.warning(
                "%s; counting %s from the identifies log in Python instead", err, audience
            )
            return warehouse.load_log().audience_size(audience, times, known_at=known_at)
        (row,) = warehouse.connection.query(sql)
        sizes += [(moment, int(size or 0)) for moment, size in zip(chunk, row, strict=True)]
    return sizes


def audience_size(args: argparse.Namespace, out: TextIO) -> int:
    """``audience-size``: members of an audience at each step of a time range."""
    space = load_space(args.space)
    _needs_log(space, "audience-size")
    if args.audience not in space.audience_keys:
        raise UsageError(
            f"--audience {args.audience!r} is not a synced audience of the space; known: "
            f"{list(space.audience_keys)}"
        )
    start = parse_timestamp(args.start, "--from")
    end = parse_timestamp(args.end, "--to")
    step = parse_duration(args.every)
    known_at = _timestamp(args, "known_at", "--known-at")
    if end < start:
        raise UsageError(f"--to {args.end} is before --from {args.start}; swap them")
    count = int((end - start) / step) + 1
    if count > MAX_POINTS:
        raise UsageError(
            f"--from/--to/--every make {count} points; at most {MAX_POINTS}: use a longer "
            "--every or a shorter range"
        )
    times = list(iter_times(start, end, step))
    svg_path = Path(args.svg) if args.svg else None
    if svg_path is not None and not svg_path.parent.is_dir():
        raise UsageError(f"--svg {args.svg}: the directory {str(svg_path.parent)!r} does not exist")
    with open_warehouse(args.database, space, must_exist=True) as warehouse:
        sizes = audience_sizes(warehouse, args.audience, times, known_at)
    if svg_path is not None:
        partial = svg_path.with_name(f".{svg_path.name}.partial")
        partial.write_text(line_chart(sizes, title=f"{args.audience}: audience size"), "utf-8")
        partial.replace(svg_path)
    if args.json:
        _print_json(out, [{"time": moment, "size": size} for moment, size in sizes])
        return 0
    out.write(format_table(["time", args.audience], [[t, n] for t, n in sizes]) + "\n")
    if svg_path is not None:
        out.write(f"chart written to {svg_path}\n")
    return 0
