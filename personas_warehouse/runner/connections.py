"""One small, uniform adapter over every engine the runner drives.

The runner and the engine tests talk to SQLite, DuckDB, PostgreSQL (psycopg 3), MySQL/MariaDB
(PyMySQL), ClickHouse (chDB, in process) and Spark (a local ``SparkSession``) through the same
:class:`Connection`: ``execute``, ``executemany``, ``query``, ``transaction`` and a few catalog
helpers. What differs between engines is held in class flags (``paramstyle``,
``supports_transactions``, ``transactional_ddl``), so callers ask a flag,
never an engine's name.

Time stamps are the one thing every driver gets wrong in its own way, so the adapter owns them:

* binding: an aware ``datetime`` is sent as the same instant on every engine (MariaDB's driver
  drops the offset, so it gets naive UTC; SQLite has no time type, so it gets
  :func:`timestamp_text`); a naive ``datetime`` is taken to be UTC;
* reading: every ``datetime`` that ``query`` returns is aware and in UTC. A naive value from the
  engine is read as UTC (the convention this adapter writes with), except where the driver tells
  its real zone: Spark ``TIMESTAMP`` values come back in the Python process's local time, and chDB
  values in the column's time zone; both are converted. SQLite returns the stored text.

Drivers are imported only when an engine is used, so none of them is a hard dependency.

>>> conn = connect_url("sqlite://")
>>> conn.execute("CREATE TABLE t (a INTEGER, b TEXT)")
>>> p = conn.placeholder
>>> conn.executemany(f"INSERT INTO t VALUES ({p}, {p})", [(1, "x"), (2, "y")])
>>> with conn.transaction():
...     conn.execute(f"INSERT INTO t VALUES ({p}, {p})", (3, "z"))
>>> conn.query("SELECT a, b FROM t ORDER BY a")
[(1, 'x'), (2, 'y'), (3, 'z')]
>>> conn.close()
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import datetime as dt
import decimal
import importlib
import math
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any, ClassVar, Final
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from sqlglot import exp

__all__ = [
    "KINDS",
    "Connection",
    "connect_url",
    "spark_session",
    "stop_spark_session",
    "timestamp_text",
    "wrap_connection",
]

UTC: Final = dt.UTC

KINDS: Final = ("sqlite", "duckdb", "postgres", "mysql", "clickhouse", "spark")
"""Every value :attr:`Connection.kind` can take."""

_EXTRAS: Final = {
    "duckdb": "duckdb",
    "psycopg": "postgres",
    "pymysql": "mysql",
    "chdb": "clickhouse",
    "chdb.dbapi": "clickhouse",
    "pyspark.sql": "spark",
}


def _import_driver(module: str) -> ModuleType:
    """Import a driver on first use, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        extra = _EXTRAS.get(module, module)
        raise ValueError(
            f"the {module!r} driver is not installed; install it with "
            f"`pip install personas-warehouse[{extra}]`"
        ) from error


def timestamp_text(value: dt.datetime) -> str:
    """Render a time stamp as the fixed-width UTC text used where an engine has no time type.

    Every value has the same width and zone, so text order is time order (SQLite compares
    these strings directly). A naive value is taken to be UTC.

    >>> moment = dt.datetime(2024, 5, 1, 12, 34, 56, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    >>> timestamp_text(moment)
    '2024-05-01 10:34:56.000000+00:00'
    """
    return _as_utc(value).isoformat(sep=" ", timespec="microseconds")


def _as_utc(value: dt.datetime) -> dt.datetime:
    """The same instant, aware and in UTC; a naive value is taken to be UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _utc_value(value: Any) -> Any:
    """``value`` made aware UTC if it is a datetime (naive read as UTC); anything else as is."""
    return _as_utc(value) if isinstance(value, dt.datetime) else value


def _utc_columns(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """``rows`` (at least one) transposed, every datetime made aware UTC (naive read as UTC).

    Only the columns that hold a datetime are converted value by value (the types of a column
    are gathered in C): reading 1M rows of 56 columns, 3 of them timestamps, spent 18 s making
    every cell go through a Python test."""
    columns = list(zip(*rows, strict=True))
    for index, column in enumerate(columns):
        if any(issubclass(kind, dt.datetime) for kind in set(map(type, column))):
            columns[index] = tuple(map(_utc_value, column))
    return columns


_INSERT_VALUES: Final = re.compile(
    r"^(?P<head>\s*INSERT\s.*?\bVALUES\s*)(?P<row>\(.*\))(?P<tail>\s*;?\s*)$",
    re.IGNORECASE | re.DOTALL,
)


def _split_insert_values(sql: str) -> tuple[str, str] | None:
    """Split ``INSERT ... VALUES (row)`` into head and row template, if it is exactly that."""
    match = _INSERT_VALUES.match(sql)
    if match is None:
        return None
    row = match.group("row")
    depth = 0
    quote: str | None = None
    for index, char in enumerate(row):
        if quote is not None:
            if char == quote:
                quote = None
            continue
        if char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0 and index != len(row) - 1:
                return None  # more than one tuple, or something after the tuple
    if depth != 0 or quote is not None:
        return None
    return match.group("head"), row


class Connection(abc.ABC):
    """A connection to one engine, with the same small interface on every engine.

    Outside :meth:`transaction`, every statement is committed as soon as it has run (the adapter
    commits a driver that is not in autocommit mode itself). :meth:`close` closes the driver's
    connection only when this adapter opened it (:func:`connect_url`); an object handed to
    :func:`wrap_connection` stays open for its owner, and the process-wide chDB and Spark
    sessions are never closed by it.
    """

    kind: ClassVar[str]
    """Which engine: one of :data:`KINDS`."""
    paramstyle: ClassVar[str]
    """Positional placeholder style ``execute`` takes: ``qmark`` (``?``) or ``format`` (``%s``).

    With ``format``, a literal ``%`` in a statement that has parameters is written ``%%``.
    """
    supports_transactions: ClassVar[bool] = True
    """Whether :meth:`transaction` really commits or rolls back (False: a documented no-op)."""
    transactional_ddl: ClassVar[bool] = True
    """Whether DDL inside a transaction is rolled back with it.

    False on MySQL: DDL commits everything before it; what follows is still one transaction.
    """
    insert_batch_rows: ClassVar[int] = 0
    """Rows per multi-row ``INSERT`` in :meth:`executemany` (0: the driver's own executemany).

    Set where each statement is expensive (Spark, chDB), so one statement carries many rows.
    """

    def __init__(self, raw: Any, *, owned: bool) -> None:
        """Wrap the driver object ``raw``; ``owned`` says whether :meth:`close` closes it."""
        self._raw = raw
        self._owned = owned
        self._closed = False
        self._depth = 0

    def __repr__(self) -> str:
        """Show the engine and whether the connection is still open."""
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} kind={self.kind!r} {state}>"

    def __enter__(self) -> Connection:
        """Use the connection as a context manager that closes it on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the connection."""
        self.close()

    @property
    def raw(self) -> Any:
        """The driver's own connection (or the ``SparkSession``)."""
        return self._raw

    @property
    def placeholder(self) -> str:
        """The positional placeholder for :attr:`paramstyle`: ``?`` or ``%s``."""
        return "?" if self.paramstyle == "qmark" else "%s"

    @property
    def in_transaction(self) -> bool:
        """Whether a :meth:`transaction` block is open."""
        return self._depth > 0

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def quote(self, identifier: str) -> str:
        """Quote one identifier for this engine, escaped as sqlglot writes it for the engine's
        dialect (ClickHouse also escapes backslashes, so ``pw\\'x`` stays itself)."""
        return exp.to_identifier(identifier, quoted=True).sql(dialect=self.kind)

    def qualified(self, schema: str, table: str) -> str:
        """``schema.table``, both quoted."""
        return f"{self.quote(schema)}.{self.quote(table)}"

    # -- statements -------------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run one statement, binding ``params`` to :attr:`placeholder` markers in order."""
        self._check_open()
        bound = self._bind_row(params) if params else None
        self._run(sql, bound)
        self._after_statement()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per row of parameters (as few round trips as possible)."""
        self._check_open()
        if not rows:
            return
        split = _split_insert_values(sql) if self.insert_batch_rows else None
        if split is None:
            self._run_many(sql, [self._bind_row(row) for row in rows])
            self._after_statement()
            return
        head, template = split
        size = self.insert_batch_rows
        for start in range(0, len(rows), size):
            self._run_batch(head, template, rows[start : start + size])
        self._after_statement()

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement and return every row (datetimes aware, in UTC)."""
        self._check_open()
        bound = self._bind_row(params) if params else None
        rows = self._fetch(sql, bound)
        self._after_statement()
        return rows

    def query_columns(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """:meth:`query`'s result column by column (``[]`` when there is no row): for readers
        that decode a column at a time (``Warehouse.load_log``)."""
        self._check_open()
        bound = self._bind_row(params) if params else None
        columns = self._fetch_columns(sql, bound)
        self._after_statement()
        return columns

    def _fetch_columns(self, sql: str, params: Sequence[Any] | None) -> list[tuple[Any, ...]]:
        if type(self)._fetch is not Connection._fetch:  # an engine that reads its own way
            return list(zip(*self._fetch(sql, params), strict=True))
        rows = self._fetch_plain(sql, params)
        return _utc_columns(rows) if rows else []

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block in one transaction: commit at the end, roll back on any exception.

        A block inside another joins the outer one. Where :attr:`supports_transactions` is
        False (Spark, chDB) this only marks the block: statements take effect as they run and
        nothing is undone. Where :attr:`transactional_ddl` is False (MySQL), a DDL statement
        commits everything before it.
        """
        self._check_open()
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._begin()
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._rollback()
            raise
        self._depth = 0
        self._commit()

    def close(self) -> None:
        """Close the connection (see the class docstring for what is really closed)."""
        if self._closed:
            return
        self._closed = True
        if self._owned:
            self._close_raw()

    # -- catalog ----------------------------------------------------------------------------

    @abc.abstractmethod
    def columns(self, schema: str, table: str) -> dict[str, str]:
        """Column name -> declared type as the engine reports it, in column order.

        Empty when the table (or the schema) does not exist.
        """

    @abc.abstractmethod
    def tables(self, schema: str) -> list[str]:
        """The names of the tables in ``schema``, sorted; empty when the schema does not exist."""

    def create_schema(self, schema: str) -> None:
        """Create ``schema`` if it does not exist."""
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {self.quote(schema)}")

    def drop_schema(self, schema: str) -> None:
        """Drop ``schema`` and everything in it, if it exists."""
        self.execute(f"DROP SCHEMA IF EXISTS {self.quote(schema)} CASCADE")

    # -- per-driver hooks -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"this {self.kind} connection is closed; open a new one")

    def _bind_row(self, row: Sequence[Any]) -> list[Any]:
        return [self._bind(value) for value in row]

    def _bind(self, value: Any) -> Any:
        """Convert one parameter to what the driver stores faithfully."""
        if isinstance(value, dt.datetime):
            return _as_utc(value)
        return value

    def _run(self, sql: str, params: Sequence[Any] | None) -> None:
        cursor = self._raw.cursor()
        try:
            cursor.execute(sql) if params is None else cursor.execute(sql, params)
        finally:
            cursor.close()

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        cursor = self._raw.cursor()
        try:
            cursor.executemany(sql, rows)
        finally:
            cursor.close()

    def _run_batch(self, head: str, template: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run ``head`` followed by ``template`` once per row, as one statement."""
        statement = head + ", ".join([template] * len(rows))
        self._run(statement, [value for row in rows for value in self._bind_row(row)])

    def _fetch(self, sql: str, params: Sequence[Any] | None) -> list[tuple[Any, ...]]:
        rows = self._fetch_plain(sql, params)
        return list(zip(*_utc_columns(rows), strict=True)) if rows else []

    def _fetch_plain(self, sql: str, params: Sequence[Any] | None) -> Sequence[Sequence[Any]]:
        """The rows as the driver returns them (``[]`` for a statement with no result)."""
        cursor = self._raw.cursor()
        try:
            cursor.execute(sql) if params is None else cursor.execute(sql, params)
            if cursor.description is None:
                return []
            rows: Sequence[Sequence[Any]] = cursor.fetchall()
            return rows
        finally:
            cursor.close()

    def _after_statement(self) -> None:  # noqa: B027 (optional hook; no-op is the default)
        """Commit a statement run outside a transaction when the driver holds it open."""

    def _begin(self) -> None:  # noqa: B027 (optional hook; no-op is the default)
        """Start a transaction (no-op where the engine has none)."""

    def _commit(self) -> None:  # noqa: B027 (optional hook; no-op is the default)
        """Commit the transaction (no-op where the engine has none)."""

    def _rollback(self) -> None:  # noqa: B027 (optional hook; no-op is the default)
        """Roll the transaction back (no-op where the engine has none)."""

    def _close_raw(self) -> None:
        self._raw.close()


# -- SQLite -------------------------------------------------------------------------------


class SQLiteConnection(Connection):
    """SQLite through :mod:`sqlite3`. A schema is an ATTACHed database.

    SQLite has no time type: datetimes are bound as :func:`timestamp_text` and read back as
    that text. ``ATTACH``/``DETACH`` cannot run inside a transaction.
    """

    kind = "sqlite"
    paramstyle = "qmark"

    def _bind(self, value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return timestamp_text(value)
        if isinstance(value, dt.date):
            return value.isoformat()
        return value

    def _after_statement(self) -> None:
        if not self._depth and self._raw.in_transaction:
            self._raw.commit()

    def _begin(self) -> None:
        if self._raw.in_transaction:
            self._raw.commit()
        self._raw.execute("BEGIN")

    def _commit(self) -> None:
        self._raw.commit()

    def _rollback(self) -> None:
        self._raw.rollback()

    def _attached(self) -> dict[str, str]:
        return {name: path for _, name, path in self._raw.execute("PRAGMA database_list")}

    def columns(self, schema: str, table: str) -> dict[str, str]:
        """Column types from ``PRAGMA table_info``."""
        if schema not in self._attached():
            return {}
        rows = self.query(f"PRAGMA {self.quote(schema)}.table_info({self.quote(table)})")
        return {name: declared for _, name, declared, *_ in rows}

    def tables(self, schema: str) -> list[str]:
        """Tables listed in the attached database's ``sqlite_master``."""
        if schema not in self._attached():
            return []
        rows = self.query(
            f"SELECT name FROM {self.quote(schema)}.sqlite_master "
            "WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        )
        return [name for (name,) in rows]

    def create_schema(self, schema: str) -> None:
        """ATTACH a database named ``schema``: in memory, or a file beside the main one."""
        attached = self._attached()
        if schema in attached:
            return
        main = attached.get("main", "")
        path = f"{os.path.splitext(main)[0]}.{schema}.sqlite" if main else ":memory:"
        self.execute(f"ATTACH DATABASE ? AS {self.quote(schema)}", (path,))

    def drop_schema(self, schema: str) -> None:
        """DETACH the database named ``schema`` (its file, if any, is left on disk)."""
        if schema in {"main", "temp"}:
            raise ValueError(f"SQLite's {schema!r} database cannot be dropped")
        if schema in self._attached():
            self.execute(f"DETACH DATABASE {self.quote(schema)}")


# -- DuckDB -------------------------------------------------------------------------------


class DuckDBConnection(Connection):
    """DuckDB. Statements run on the connection itself: a DuckDB cursor is a separate
    connection with its own transactions."""

    kind = "duckdb"
    paramstyle = "qmark"

    def _run(self, sql: str, params: Sequence[Any] | None) -> None:
        self._raw.execute(sql, params)

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._raw.executemany(sql, rows)

    def _fetch_plain(self, sql: str, params: Sequence[Any] | None) -> Sequence[Sequence[Any]]:
        result = self._raw.execute(sql, params)
        if result.description is None:
            return []
        rows: Sequence[Sequence[Any]] = result.fetchall()
        return rows

    def _begin(self) -> None:
        self._raw.begin()

    def _commit(self) -> None:
        self._raw.commit()

    def _rollback(self) -> None:
        self._raw.rollback()

    def columns(self, schema: str, table: str) -> dict[str, str]:
        """Column types from ``information_schema.columns``."""
        rows = self.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position",
            (schema, table),
        )
        return dict(rows)

    def tables(self, schema: str) -> list[str]:
        """Base tables from ``information_schema.tables``."""
        rows = self.query(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() AND table_schema = ? "
            "AND table_type = 'BASE TABLE' ORDER BY table_name",
            (schema,),
        )
        return [name for (name,) in rows]


# -- PostgreSQL ---------------------------------------------------------------------------


class PostgresConnection(Connection):
    """PostgreSQL through psycopg 3.

    psycopg binds parameters on the server, so a statement that takes none (DDL, ``SET``)
    cannot have placeholders.
    """

    kind = "postgres"
    paramstyle = "format"

    def _after_statement(self) -> None:
        raw = self._raw
        if not self._depth and not raw.autocommit and raw.info.transaction_status != 0:
            raw.commit()  # 0 is psycopg.pq.TransactionStatus.IDLE

    def _begin(self) -> None:
        raw = self._raw
        if raw.autocommit:
            raw.execute("BEGIN")
        elif raw.info.transaction_status != 0:
            raw.commit()

    def _commit(self) -> None:
        self._raw.commit()

    def _rollback(self) -> None:
        self._raw.rollback()

    def columns(self, schema: str, table: str) -> dict[str, str]:
        """Column types as ``format_type`` renders them (``character varying(255)``)."""
        rows = self.query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) "
            "FROM pg_catalog.pg_attribute a "
            "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum",
            (schema, table),
        )
        return dict(rows)

    def tables(self, schema: str) -> list[str]:
        """Base tables from ``information_schema.tables``."""
        rows = self.query(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY table_name",
            (schema,),
        )
        return [name for (name,) in rows]


# -- MySQL / MariaDB ------------------------------------------------------------------------


class MySQLConnection(Connection):
    """MySQL or MariaDB through PyMySQL. A schema is a database.

    The driver drops a datetime's offset (12:34+02:00 is stored as 12:34), so datetimes are
    bound as naive UTC, and naive values read back are UTC. Use ``DATETIME(6)`` columns:
    ``TIMESTAMP`` columns convert through the session time zone (:func:`connect_url` sets it to
    UTC). A DDL statement inside a transaction commits everything before it; the statements
    after it form a new transaction, still rolled back on error.
    """

    _autocommit_before = False

    kind = "mysql"
    paramstyle = "format"
    transactional_ddl = False

    def _bind(self, value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return _as_utc(value).replace(tzinfo=None)
        return value

    def _after_statement(self) -> None:
        if not self._depth and not self._raw.get_autocommit():
            self._raw.commit()

    def _begin(self) -> None:
        # Autocommit is switched off for the block: a DDL statement ends the transaction
        # with an implicit commit, and with autocommit on, every statement after it would
        # then be committed at once instead of joining a new transaction.
        self._autocommit_before = bool(self._raw.get_autocommit())
        if self._autocommit_before:
            self._raw.autocommit(False)
        self._raw.begin()

    def _commit(self) -> None:
        try:
            self._raw.commit()
        finally:
            self._restore_autocommit()

    def _rollback(self) -> None:
        try:
            self._raw.rollback()
        finally:
            self._restore_autocommit()

    def _restore_autocommit(self) -> None:
        if self._autocommit_before:
            self._raw.autocommit(True)

    def columns(self, schema: str, table: str) -> dict[str, str]:
        """Column types from ``information_schema.columns.column_type`` (``varchar(255)``)."""
        rows = self.query(
            "SELECT column_name, column_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema, table),
        )
        return {name: _text(declared) for name, declared in rows}

    def tables(self, schema: str) -> list[str]:
        """Base tables from ``information_schema.tables``."""
        rows = self.query(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY table_name",
            (schema,),
        )
        return [_text(name) for (name,) in rows]

    def create_schema(self, schema: str) -> None:
        """Create the database ``schema`` if it does not exist, comparing text exactly.

        The server default (``utf8mb4_general_ci``) takes ``'a' = 'A'`` and ``'a' = 'a '``;
        the database gets a binary no-pad collation instead, so ids stay distinct.
        """
        collation = self._exact_collation()
        self.execute(
            f"CREATE DATABASE IF NOT EXISTS {self.quote(schema)} "
            f"CHARACTER SET utf8mb4 COLLATE {collation}"
        )

    def drop_schema(self, schema: str) -> None:
        """Drop the database ``schema`` if it exists."""
        self.execute(f"DROP DATABASE IF EXISTS {self.quote(schema)}")

    def _exact_collation(self) -> str:
        """The first exact collation the server has: binary and without trailing-space padding
        (MariaDB's ``utf8mb4_nopad_bin``, MySQL 8's ``utf8mb4_0900_bin``), else binary."""
        rows = self.query(
            "SELECT collation_name FROM information_schema.collations "
            "WHERE collation_name IN (%s, %s)",
            _EXACT_COLLATIONS,
        )
        available = {_text(name) for (name,) in rows}
        return next((name for name in _EXACT_COLLATIONS if name in available), "utf8mb4_bin")


_EXACT_COLLATIONS: Final = ("utf8mb4_nopad_bin", "utf8mb4_0900_bin")


def _text(value: Any) -> str:
    """A catalog value as text (some MySQL versions return bytes)."""
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


# -- ClickHouse (chDB) --------------------------------------------------------------------

_CLICKHOUSE_ZONE: Final = re.compile(r"DateTime(?:64)?\((?:\s*\d+\s*,)?\s*'([^']+)'\s*\)")


def _clickhouse_literal(value: Any) -> str:
    """A Python value as a ClickHouse SQL literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\0", "\\0")
        return f"'{escaped}'"
    if isinstance(value, bytes | bytearray):
        return "'" + "".join(f"\\x{byte:02x}" for byte in value) + "'"
    if isinstance(value, dt.datetime):
        return f"'{timestamp_text(value)}'"
    if isinstance(value, dt.date):
        return f"'{value.isoformat()}'"
    raise ValueError(f"cannot bind a {type(value).__name__} value on ClickHouse")


class ClickHouseConnection(Connection):
    """ClickHouse in process through chDB's DB-API.

    Parameters are rendered as literals here (``%s`` markers, ``%%`` for a literal ``%``, the
    same rules as the other ``format`` drivers). Datetimes are bound as UTC text with its
    offset, which chDB's default ``best_effort`` input format reads as the same instant. The
    driver returns naive datetimes on the wall clock of each column's time zone (the session
    zone when the column names none); they are converted to UTC from the column types.
    :func:`connect_url` sets the session zone to UTC (otherwise it is the process's ``TZ``).
    A column declared in a zone with summer time is ambiguous in the hour repeated when
    clocks go back: declare ``DateTime64(6, 'UTC')``. No transactions.
    """

    kind = "clickhouse"
    paramstyle = "format"
    supports_transactions = False
    insert_batch_rows = 1000

    def __init__(self, raw: Any, *, owned: bool) -> None:
        """Wrap a ``chdb.dbapi`` connection and read the server's time zone once."""
        super().__init__(raw, owned=owned)
        cursor = raw.cursor()
        try:
            cursor.execute("SELECT timezone()")
            (zone,) = cursor.fetchone()
        finally:
            cursor.close()
        self._server_zone = ZoneInfo(zone)

    def _bind(self, value: Any) -> Any:
        return _clickhouse_literal(value)

    def _render(self, sql: str, params: Sequence[Any] | None) -> str:
        return sql % tuple(params) if params else sql

    def _run(self, sql: str, params: Sequence[Any] | None) -> None:
        super()._run(self._render(sql, params), None)

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        for row in rows:
            self._run(sql, row)

    def _fetch(self, sql: str, params: Sequence[Any] | None) -> list[tuple[Any, ...]]:
        cursor = self._raw.cursor()
        try:
            cursor.execute(self._render(sql, params))
            if cursor.description is None:
                return []
            zones = [self._zone(column[1]) for column in cursor.description]
            return [
                tuple(
                    _in_zone(value, zone) if isinstance(value, dt.datetime) else value
                    for value, zone in zip(row, zones, strict=True)
                )
                for row in cursor.fetchall()
            ]
        finally:
            cursor.close()

    def _zone(self, type_name: object) -> dt.tzinfo:
        match = _CLICKHOUSE_ZONE.search(str(type_name))
        return ZoneInfo(match.group(1)) if match else self._server_zone

    def _close_raw(self) -> None:
        """Never close chDB: closing its only in-memory session loses every table in it."""

    def columns(self, schema: str, table: str) -> dict[str, str]:
        """Column types from ``system.columns`` (``Nullable(String)``)."""
        rows = self.query(
            "SELECT name, type FROM system.columns "
            "WHERE database = %s AND table = %s ORDER BY position",
            (schema, table),
        )
        return dict(rows)

    def tables(self, schema: str) -> list[str]:
        """Tables from ``system.tables``."""
        rows = self.query(
            "SELECT name FROM system.tables WHERE database = %s AND NOT is_temporary ORDER BY name",
            (schema,),
        )
        return [name for (name,) in rows]

    def create_schema(self, schema: str) -> None:
        """Create the database ``schema`` if it does not exist."""
        self.execute(f"CREATE DATABASE IF NOT EXISTS {self.quote(schema)}")

    def drop_schema(self, schema: str) -> None:
        """Drop the database ``schema`` if it exists."""
        self.execute(f"DROP DATABASE IF EXISTS {self.quote(schema)} SYNC")


def _in_zone(value: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """A naive wall-clock value in ``zone`` as aware UTC (an aware value is only converted)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


_chdb_lock: Final = threading.Lock()
_chdb_state: dict[str, Any] = {}


def _chdb_connection(path: str | None) -> Any:
    """The process's one chDB connection, opened at ``path`` (None: in memory) on first use.

    chDB runs one embedded server per process, fixed to the first data path for the life of
    the process; asking for another path afterwards is an error.
    """
    with _chdb_lock:
        if "raw" in _chdb_state:
            opened: str | None = _chdb_state["path"]
            if path is not None and path != opened:
                where = "in memory" if opened is None else f"at {opened!r}"
                raise ValueError(
                    f"chDB is already open {where} in this process and cannot open {path!r}: "
                    "chDB allows one data path per process"
                )
            return _chdb_state["raw"]
        dbapi = _import_driver("chdb.dbapi")
        raw = dbapi.connect(path) if path is not None else dbapi.connect()
        cursor = raw.cursor()
        try:
            # Columns that name no zone then hold and return UTC; in the server's zone (the
            # process's TZ) the hour repeated when clocks go back could not be told apart.
            cursor.execute("SET session_timezone = 'UTC'")
        finally:
            cursor.close()
        _chdb_state.update(raw=raw, path=path)
        return raw


# -- Spark ----------------------------------------------------------------------------------


class SparkConnection(Connection):
    """A ``SparkSession``. A schema is a database. No transactions.

    Spark returns ``TIMESTAMP`` values as naive datetimes in the Python process's local time
    (whatever ``spark.sql.session.timeZone`` says); they are converted to UTC, and
    ``TIMESTAMP_NTZ`` values are read as UTC. Each statement costs a job (~0.3-0.5 s), so
    :meth:`executemany` sends multi-row ``INSERT`` statements with the values written as
    literals (binding costs several py4j round trips per value). ``execute`` runs commands;
    a ``SELECT`` passed to it is planned but not evaluated (use :meth:`query`).
    """

    kind = "spark"
    paramstyle = "qmark"
    supports_transactions = False
    insert_batch_rows = 1000

    def _run(self, sql: str, params: Sequence[Any] | None) -> None:
        self._raw.sql(sql, args=list(params)) if params else self._raw.sql(sql)

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        for row in rows:
            self._run(sql, row)

    def _run_batch(self, head: str, template: str, rows: Sequence[Sequence[Any]]) -> None:
        """Send the rows as literals: binding costs several py4j calls per value (~4x slower)."""
        parts = template.split("?")
        if any(len(row) != len(parts) - 1 for row in rows):
            super()._run_batch(head, template, rows)
            return
        tuples = []
        for row in rows:
            pieces = [parts[0]]
            for value, part in zip(row, parts[1:], strict=True):
                pieces.append(_spark_literal(value))
                pieces.append(part)
            tuples.append("".join(pieces))
        self._raw.sql(head + ", ".join(tuples))

    def _fetch(self, sql: str, params: Sequence[Any] | None) -> list[tuple[Any, ...]]:
        frame = self._raw.sql(sql, args=list(params)) if params else self._raw.sql(sql)
        types = _import_driver("pyspark.sql.types")
        readers = [
            _from_local
            if isinstance(field.dataType, types.TimestampType)
            else _as_utc
            if isinstance(field.dataType, types.TimestampNTZType)
            else None
            for field in frame.schema.fields
        ]
        return [
            tuple(
                read(value) if read is not None and isinstance(value, dt.datetime) else value
                for value, read in zip(row, readers, strict=True)
            )
            for row in frame.collect()
        ]

    def _close_raw(self) -> None:
        """The session is shared by the process; :func:`stop_spark_session` stops it."""

    def columns(self, schema: str, table: str) -> dict[str, str]:
        """Column types from ``DESCRIBE TABLE`` (partition and detail sections left out)."""
        result: dict[str, str] = {}
        if not self._raw.catalog.tableExists(self.qualified(schema, table)):
            return result
        for name, declared, *_ in self.query(f"DESCRIBE TABLE {self.qualified(schema, table)}"):
            if not name or name.startswith("#"):
                break
            result[name] = declared
        return result

    def tables(self, schema: str) -> list[str]:
        """Tables from ``SHOW TABLES IN`` (temporary views left out)."""
        if not self._raw.catalog.databaseExists(self.quote(schema)):
            return []
        rows = self.query(f"SHOW TABLES IN {self.quote(schema)}")
        return sorted(name for _, name, temporary in rows if not temporary)

    def create_schema(self, schema: str) -> None:
        """Create the database ``schema`` if it does not exist."""
        self.execute(f"CREATE DATABASE IF NOT EXISTS {self.quote(schema)}")

    def drop_schema(self, schema: str) -> None:
        """Drop the database ``schema`` and its tables, if it exists."""
        self.execute(f"DROP DATABASE IF EXISTS {self.quote(schema)} CASCADE")


def _spark_literal(value: Any) -> str:
    """A Python value as a Spark SQL literal (the same value ``spark.sql(args=...)`` binds)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value) if -(2**63) <= value < 2**63 else f"{value}BD"
    if isinstance(value, float):
        if math.isnan(value):
            return "CAST('NaN' AS DOUBLE)"
        if math.isinf(value):
            return f"CAST('{'' if value > 0 else '-'}Infinity' AS DOUBLE)"
        return f"{value!r}D"
    if isinstance(value, decimal.Decimal):
        return f"CAST('{value}' AS DECIMAL(38, {max(0, -_exponent(value))}))"
    if isinstance(value, str):
        # Backslash escapes are on by default; "${" is written as an escape so that variable
        # substitution, when a session has it on, cannot rewrite a value.
        escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("${", "\\u0024{")
        return f"'{escaped}'"
    if isinstance(value, bytes | bytearray):
        return f"X'{bytes(value).hex()}'"
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP'{timestamp_text(value)}'"
    if isinstance(value, dt.date):
        return f"DATE'{value.isoformat()}'"
    raise ValueError(f"cannot bind a {type(value).__name__} value on Spark")


def _exponent(value: decimal.Decimal) -> int:
    exponent = value.as_tuple().exponent
    return exponent if isinstance(exponent, int) else 0


def _from_local(value: dt.datetime) -> dt.datetime:
    """A naive datetime on the process's local clock as aware UTC (DST folds respected)."""
    return value.astimezone(UTC)


_spark_lock: Final = threading.Lock()
_spark_state: dict[str, Any] = {}


def spark_session() -> Any:
    """The process's shared local ``SparkSession``, started on first use (~10-20 s).

    Settings: ``SPARK_LOCAL_IP=127.0.0.1`` (unless set), master ``local[2]``, the UI off,
    ``spark.sql.session.timeZone=UTC``, few shuffle partitions (small data, fast jobs), the
    in-memory catalog and a warehouse directory of its own, removed when the process exits.
    If the process already has an active session, that session is used as it is.
    """
    with _spark_lock:
        session = _spark_state.get("session")
        if session is not None:
            return session
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        sql = _import_driver("pyspark.sql")
        active = sql.SparkSession.getActiveSession()
        if active is not None:
            _spark_state["session"] = active
            return active
        warehouse = tempfile.mkdtemp(prefix="personas-warehouse-spark-")
        session = (
            sql.SparkSession.builder.master("local[2]")
            .appName("personas_warehouse")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.default.parallelism", "2")
            .config("spark.sql.catalogImplementation", "in-memory")
            .config("spark.sql.variable.substitute", "false")
            .config("spark.sql.warehouse.dir", warehouse)
            .getOrCreate()
        )
        session.sparkContext.setLogLevel("ERROR")
        _spark_state.update(session=session, warehouse=warehouse)
        if not _spark_state.get("atexit"):
            atexit.register(stop_spark_session)
            _spark_state["atexit"] = True
        return session


def stop_spark_session() -> None:
    """Stop the shared session started by :func:`spark_session` and remove its warehouse."""
    with _spark_lock:
        session = _spark_state.pop("session", None)
        warehouse = _spark_state.pop("warehouse", None)
    if session is not None and warehouse is not None:
        session.stop()
    if warehouse is not None:
        shutil.rmtree(warehouse, ignore_errors=True)


# -- entry points ---------------------------------------------------------------------------

_DRIVER_CLASSES: Final[tuple[tuple[str, str, str, type[Connection]], ...]] = (
    # (top-level package of the object's type, module holding the class, class, adapter)
    ("sqlite3", "sqlite3", "Connection", SQLiteConnection),
    ("duckdb", "duckdb", "DuckDBPyConnection", DuckDBConnection),
    ("_duckdb", "duckdb", "DuckDBPyConnection", DuckDBConnection),
    ("psycopg", "psycopg", "Connection", PostgresConnection),
    ("pymysql", "pymysql.connections", "Connection", MySQLConnection),
    ("chdb", "chdb.dbapi.connections", "Connection", ClickHouseConnection),
    ("pyspark", "pyspark.sql", "SparkSession", SparkConnection),
    ("pyspark", "pyspark.sql.connect.session", "SparkSession", SparkConnection),
)
"""The driver classes :func:`wrap_connection` accepts (subclasses included)."""

_SUPPORTED: Final = (
    "sqlite3.Connection, duckdb.DuckDBPyConnection, psycopg.Connection (not async), "
    "pymysql.connections.Connection, chdb.dbapi.connect() (not chdb.connect()), "
    "pyspark.sql.SparkSession"
)


def wrap_connection(obj: object) -> Connection:
    """Wrap a driver's connection object, told apart by the package its type comes from.

    Only the driver that the object's type comes from is imported, and the object must be an
    instance of that driver's connection class. The object stays its owner's:
    :meth:`Connection.close` leaves it open. A :class:`Connection` is returned as it is.

    >>> import sqlite3
    >>> wrap_connection(sqlite3.connect(":memory:")).kind
    'sqlite'
    """
    if isinstance(obj, Connection):
        return obj
    cls = type(obj)
    package = (cls.__module__ or "").split(".")[0]
    for root, module, name, adapter in _DRIVER_CLASSES:
        if root != package:
            continue
        try:
            driver_class = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue  # an optional part of the driver (Spark Connect) that is not installed
        if isinstance(obj, driver_class):
            return adapter(obj, owned=False)
    raise ValueError(
        f"cannot use a {cls.__module__}.{cls.__qualname__} as a connection; supported: {_SUPPORTED}"
    )


_URL_FORMS: Final = (
    "sqlite:// (memory), sqlite:///relative.db, sqlite:////absolute.db, duckdb://, "
    "duckdb:///path.duckdb, postgresql://user@host:5432/db, mysql://user:password@host:3306/db, "
    "chdb://, chdb:///path, spark://local"
)


def connect_url(url: str) -> Connection:
    """Open a connection from a URL; the connection is closed by :meth:`Connection.close`.

    Forms: ``sqlite://`` (in memory), ``sqlite:///data.db`` (relative; four slashes for an
    absolute path), the same for ``duckdb://``, ``postgresql://user@host:port/db``,
    ``mysql://user:password@host:port/db`` (also ``mariadb://``), ``chdb://`` (the process's
    chDB; in memory unless a path follows, as ``chdb:///path``) and ``spark://local`` (the
    process's shared session, see :func:`spark_session`). Connections opened here use UTC as
    their session time zone and autocommit outside :meth:`Connection.transaction`.

    >>> connect_url("duckdb://").query("SELECT 40 + 2")
    [(42,)]
    """
    scheme, separator, rest = url.partition("://")
    opener = _OPENERS.get(scheme.lower())
    if not separator or opener is None:
        raise ValueError(f"unsupported connection URL {url!r}; use one of: {_URL_FORMS}")
    return opener(url, rest, unquote(rest[1:]) if rest.startswith("/") else "")


def _open_sqlite(url: str, rest: str, path: str) -> Connection:
    raw = _import_driver("sqlite3").connect(path or ":memory:", isolation_level=None)
    return SQLiteConnection(raw, owned=True)


def _open_duckdb(url: str, rest: str, path: str) -> Connection:
    raw = _import_driver("duckdb").connect(path or ":memory:")
    raw.execute("SET TimeZone = 'UTC'")
    return DuckDBConnection(raw, owned=True)


def _open_postgres(url: str, rest: str, path: str) -> Connection:
    psycopg = _import_driver("psycopg")
    raw = psycopg.connect(url, autocommit=True, options="-c TimeZone=UTC")
    return PostgresConnection(raw, owned=True)


def _open_mysql(url: str, rest: str, path: str) -> Connection:
    return MySQLConnection(_mysql_connect(url), owned=True)


def _open_chdb(url: str, rest: str, path: str) -> Connection:
    if rest and not rest.startswith("/"):
        raise ValueError(f"chDB URLs name no host: {url!r}; use chdb:// or chdb:///path")
    return ClickHouseConnection(_chdb_connection(path or None), owned=True)


def _open_spark(url: str, rest: str, path: str) -> Connection:
    if rest.rstrip("/") != "local":
        raise ValueError(f"only a local Spark session is supported: use spark://local, not {url!r}")
    return SparkConnection(spark_session(), owned=True)


_OPENERS: Final[dict[str, Callable[[str, str, str], Connection]]] = {
    "sqlite": _open_sqlite,
    "duckdb": _open_duckdb,
    "postgresql": _open_postgres,
    "postgres": _open_postgres,
    "mysql": _open_mysql,
    "mariadb": _open_mysql,
    "chdb": _open_chdb,
    "spark": _open_spark,
}
"""URL scheme -> the function that opens it from (url, what follows ``://``, path)."""


def _mysql_connect(url: str) -> Any:
    """Open a PyMySQL connection from a ``mysql://`` URL (autocommit, UTC, utf8mb4)."""
    pymysql = _import_driver("pymysql")
    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=unquote(parts.path.lstrip("/")) or None,
        charset="utf8mb4",
        autocommit=True,
        init_command="SET time_zone = '+00:00'",
    )
