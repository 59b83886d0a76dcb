"""``personas-warehouse``: the command line (also ``python -m personas_warehouse``).

Every subcommand is described in docs/cli.md. Bad input (an unknown dialect, a malformed space
file, a time stamp without a UTC offset, an unknown user, an unreachable database) ends the
command with one line on stderr saying what is wrong and how to fix it, and exit code 2;
``--debug`` shows the traceback as well.

>>> main(["validate", "/nonexistent/space.toml"])
2
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn, TextIO

from personas_warehouse import __version__
from personas_warehouse.cli.inputs import UsageError
from personas_warehouse.errors import PersonasWarehouseError

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILURE", "EXIT_OK", "UsageError", "build_parser", "main"]

PROG = "personas-warehouse"
EXIT_OK = 0
EXIT_FAILURE = 1
"""Something went wrong that is not the caller's input (a bug, or the warehouse failing)."""
EXIT_BAD_INPUT = 2
"""The input is wrong: an argument, a file, a time stamp, a user, a database URL."""

DEFAULT_DATABASE = "duckdb:///personas.duckdb"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            EXIT_BAD_INPUT,
            f"{self.prog}: error: {message} (see `{self.prog} --help`)\n",
        )


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback when a command fails",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log what is done (-vv for more)",
    )


def _space_arg(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--space", required=required, metavar="SPACE.toml", help="the space file (TOML)"
    )


def _database_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        default=DEFAULT_DATABASE,
        metavar="URL",
        help="duckdb:///path.duckdb (default %(default)s), sqlite:///path.db, "
        "postgresql://user@host:5432/db, mysql://user@host/db; a bare path ending in .duckdb, "
        ".db or .sqlite works too",
    )


def _json_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(
        prog=PROG,
        description="Sync computed traits and audiences into a SQL warehouse and rebuild any "
        "user's state at any moment. See docs/cli.md.",
    )
    _common(parser)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    _offline_commands(sub)
    _warehouse_commands(sub)
    return parser


def _offline_commands(sub: Any) -> None:
    """The subcommands that need no database: validate, ddl, migrate, as-of."""
    p = sub.add_parser("validate", help="check a space file and summarise it")
    p.add_argument("space", metavar="SPACE.toml", help="the space file (TOML)")
    p.add_argument(
        "--dialect",
        default="postgres",
        help="check the space's limits and show its column names for this dialect "
        "(default %(default)s)",
    )
    _common(p)
    p.set_defaults(handler="commands:validate")

    p = sub.add_parser("ddl", help="print the CREATE statements of a space for a dialect")
    _space_arg(p)
    p.add_argument("--dialect", required=True, help="any sqlglot dialect, e.g. snowflake")
    _common(p)
    p.set_defaults(handler="commands:ddl")

    p = sub.add_parser("migrate", help="print the statements that evolve one space into another")
    p.add_argument("--from", dest="old", required=True, metavar="OLD.toml")
    p.add_argument("--to", dest="new", required=True, metavar="NEW.toml")
    p.add_argument("--dialect", required=True, help="any sqlglot dialect, e.g. snowflake")
    _common(p)
    p.set_defaults(handler="commands:migrate")

    p = sub.add_parser("as-of", help="print the query that rebuilds the users table at a time")
    _space_arg(p)
    p.add_argument(
        "--at", required=True, metavar="TS", help="ISO-8601 with offset, e.g. 2024-05-01T12:00Z"
    )
    p.add_argument("--dialect", required=True, help="any sqlglot dialect, e.g. snowflake")
    p.add_argument("--known-at", metavar="TS", help="only what the warehouse had received by then")
    _common(p)
    p.set_defaults(handler="commands:as_of")


def _warehouse_commands(sub: Any) -> None:
    """The subcommands that work on a database: sync, reconstruct, history, audience-size, demo."""

    p = sub.add_parser("sync", help="write one run's computed results into the warehouse")
    _space_arg(p)
    _database_arg(p)
    p.add_argument(
        "--input", required=True, metavar="RESULTS", help="a .jsonl or .csv results file"
    )
    p.add_argument("--at", metavar="TS", help="the run's time (default: now)")
    p.add_argument(
        "--audiences",
        metavar="KEYS",
        help="comma-separated audiences computed this run (default: every audience; '' for none)",
    )
    p.add_argument("--no-progress", action="store_true", help="never draw a progress bar")
    _common(p)
    p.set_defaults(handler="commands:sync")

    p = sub.add_parser("reconstruct", help="rebuild one user's state at a time")
    _space_arg(p)
    _database_arg(p)
    p.add_argument("--user", required=True)
    p.add_argument("--at", required=True, metavar="TS")
    p.add_argument("--known-at", metavar="TS", help="only what the warehouse had received by then")
    _json_arg(p)
    _common(p)
    p.set_defaults(handler="commands:reconstruct")

    p = sub.add_parser("history", help="a user's changes (or, without --user, the sync runs)")
    _space_arg(p)
    _database_arg(p)
    p.add_argument("--user", help="the user whose changes to list")
    _json_arg(p)
    _common(p)
    p.set_defaults(handler="commands:history")

    p = sub.add_parser("audience-size", help="an audience's size over a time range")
    _space_arg(p)
    _database_arg(p)
    p.add_argument("--audience", required=True)
    p.add_argument("--from", dest="start", required=True, metavar="TS")
    p.add_argument("--to", dest="end", required=True, metavar="TS")
    p.add_argument("--every", default="1h", help="the step, e.g. 1h, 15m, 1d (default 1h)")
    p.add_argument("--known-at", metavar="TS", help="only what the warehouse had received by then")
    p.add_argument("--svg", metavar="OUT.svg", help="also draw the curve into an SVG file")
    _json_arg(p)
    _common(p)
    p.set_defaults(handler="commands:audience_size")

    p = sub.add_parser("demo", help="build demo.duckdb from a simulated day and show it")
    p.add_argument("--path", default="demo.duckdb", help="the DuckDB file (default %(default)s)")
    p.add_argument("--seed", type=int, default=7, help="the simulation's seed (default 7)")
    p.add_argument("--users", type=int, default=40, help="simulated users (default 40)")
    p.add_argument("--hours", type=int, default=24, help="hourly syncs (default 24)")
    _common(p)
    p.set_defaults(handler="demo:run")


@contextlib.contextmanager
def _logging(verbosity: int, stream: TextIO) -> Iterator[None]:
    """Log the library's messages to ``stream`` (warnings only unless ``-v``), then restore."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("personas_warehouse")
    saved = (root.handlers[:], root.level, root.propagate)
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    try:
        yield
    finally:
        root.handlers[:], root.level, root.propagate = saved


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _handler(name: str) -> Callable[[argparse.Namespace, TextIO], int]:
    """The function behind a subcommand, imported only when that subcommand runs."""
    module_name, _, function = name.partition(":")
    module = importlib.import_module(f"personas_warehouse.cli.{module_name}")
    handler: Callable[[argparse.Namespace, TextIO], int] = getattr(module, function)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 bad input, 1 anything else)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version and argument errors
        return stop.code if isinstance(stop.code, int) else EXIT_BAD_INPUT
    with _logging(int(getattr(args, "verbose", 0) or 0), sys.stderr):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    debug = bool(getattr(args, "debug", False))
    where = f"{PROG} {args.command}"
    try:
        code: int = _handler(args.handler)(args, sys.stdout)
    except PersonasWarehouseError as err:
        if debug:
            traceback.print_exc()
        print(f"{where}: error: {_one_line(str(err))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's final flush is quiet
        return EXIT_OK
    except Exception as err:  # the last resort: one line, not a traceback
        if debug:
            traceback.print_exc()
        print(
            f"{where}: unexpected error: {type(err).__name__}: {_one_line(str(err))} "
            "(rerun with --debug for the traceback, and report it if it looks like a bug)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    sys.stdout.flush()
    return code
