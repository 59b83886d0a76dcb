"""The engines the tests execute SQL on: one list, each with its dialect and how to connect.

In-process engines (SQLite, DuckDB, chDB, Spark) run whenever their driver imports; server
engines run when their URL is set: ``PW_TEST_POSTGRES_URL`` (for example
``postgresql://postgres@127.0.0.1:5432/test``) and ``PW_TEST_MYSQL_URL``
(``mysql://root@127.0.0.1:3306/test``). ``PW_TEST_REQUIRE``, a comma-separated list of engine
names (CI sets all of them), turns "not available" into a test failure instead of a skip, so a
missing driver or an unset URL cannot pass unnoticed.

Tests branch on what an engine can do (``Connection.supports_transactions``...), never on its
name; the ``types`` table is data: the column type each engine uses for a logical type.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pytest

from personas_warehouse.runner.connections import Connection, connect_url

REQUIRE_ENV = "PW_TEST_REQUIRE"


@dataclass(frozen=True)
class Engine:
    """One engine the tests can run on."""

    name: str
    """Its name: the pytest id, and what ``PW_TEST_REQUIRE`` lists."""
    dialect: str
    """The sqlglot dialect that writes SQL for it."""
    module: str
    """The driver module that must import for the engine to be available."""
    types: Mapping[str, str]
    """Logical type (int, bigint, double, text, bool, timestamp, date) -> its column type."""
    reported_types: Mapping[str, str]
    """Logical type -> the type ``Connection.columns`` reports for a column declared with it."""
    url: str | None = None
    """The connection URL of an in-process engine."""
    url_env: str | None = None
    """The environment variable holding a server engine's URL."""
    table_suffix: str = ""
    """What follows the column list in CREATE TABLE (a table engine or format)."""
    needs_java: bool = False
    """Whether the engine runs on a JVM."""
    session_fixture: str | None = None
    """A session-scoped fixture that starts the engine once per test run (Spark: ~10-20 s)."""
    slow: bool = False
    """Whether tests on it are marked ``slow`` (each statement costs a Spark job)."""

    def connection_url(self) -> str | None:
        """The URL to connect with, or None when a server engine's URL is not set."""
        if self.url_env is not None:
            return os.environ.get(self.url_env) or None
        return self.url

    def unavailable_reason(self) -> str | None:
        """Why the engine cannot run here, or None when it can."""
        if self.connection_url() is None:
            return f"{self.name}: set {self.url_env} to run the tests on it"
        try:
            importlib.import_module(self.module)
        except ImportError as error:
            return f"{self.name}: its driver {self.module!r} does not import ({error})"
        if self.needs_java and not (shutil.which("java") or os.environ.get("JAVA_HOME")):
            return f"{self.name}: needs Java (no `java` on PATH and JAVA_HOME unset)"
        return None

    @property
    def required(self) -> bool:
        """Whether ``PW_TEST_REQUIRE`` names this engine."""
        return self.name in required_engines()

    def connect(self) -> Connection:
        """Open a connection (the shared session for chDB and Spark)."""
        url = self.connection_url()
        if url is None:
            raise RuntimeError(self.unavailable_reason())
        return connect_url(url)

    def create_table_sql(
        self, conn: Connection, schema: str, table: str, columns: Mapping[str, str]
    ) -> str:
        """CREATE TABLE for ``columns`` (name -> logical type) in this engine's types."""
        body = ", ".join(f"{conn.quote(name)} {self.types[kind]}" for name, kind in columns.items())
        return f"CREATE TABLE {conn.qualified(schema, table)} ({body}){self.table_suffix}"


def _nullable(kind: str) -> str:
    return f"Nullable({kind})"


ENGINES: tuple[Engine, ...] = (
    Engine(
        name="sqlite",
        dialect="sqlite",
        module="sqlite3",
        url="sqlite://",
        types={
            "int": "INTEGER",
            "bigint": "INTEGER",
            "double": "REAL",
            "text": "TEXT",
            "bool": "BOOLEAN",
            "timestamp": "TEXT",
            "date": "TEXT",
        },
        reported_types={
            "int": "INTEGER",
            "bigint": "INTEGER",
            "double": "REAL",
            "text": "TEXT",
            "bool": "BOOLEAN",
            "timestamp": "TEXT",
            "date": "TEXT",
        },
    ),
    Engine(
        name="duckdb",
        dialect="duckdb",
        module="duckdb",
        url="duckdb://",
        types={
            "int": "INTEGER",
            "bigint": "BIGINT",
            "double": "DOUBLE",
            "text": "VARCHAR",
            "bool": "BOOLEAN",
            "timestamp": "TIMESTAMPTZ",
            "date": "DATE",
        },
        reported_types={
            "int": "INTEGER",
            "bigint": "BIGINT",
            "double": "DOUBLE",
            "text": "VARCHAR",
            "bool": "BOOLEAN",
            "timestamp": "TIMESTAMP WITH TIME ZONE",
            "date": "DATE",
        },
    ),
    Engine(
        name="postgres",
        dialect="postgres",
        module="psycopg",
        url_env="PW_TEST_POSTGRES_URL",
        types={
            "int": "INTEGER",
            "bigint": "BIGINT",
            "double": "DOUBLE PRECISION",
            "text": "TEXT",
            "bool": "BOOLEAN",
            "timestamp": "TIMESTAMPTZ",
            "date": "DATE",
        },
        reported_types={
            "int": "integer",
            "bigint": "bigint",
            "double": "double precision",
            "text": "text",
            "bool": "boolean",
            "timestamp": "timestamp with time zone",
            "date": "date",
        },
    ),
    Engine(
        name="mysql",
        dialect="mysql",
        module="pymysql",
        url_env="PW_TEST_MYSQL_URL",
        types={
            "int": "INT",
            "bigint": "BIGINT",
            "double": "DOUBLE",
            "text": "TEXT",
            "bool": "BOOLEAN",
            "timestamp": "DATETIME(6)",
            "date": "DATE",
        },
        reported_types={
            "int": "int(11)",
            "bigint": "bigint(20)",
            "double": "double",
            "text": "text",
            "bool": "tinyint(1)",
            "timestamp": "datetime(6)",
            "date": "date",
        },
    ),
    Engine(
        name="spark",
        dialect="spark",
        module="pyspark.sql",
        url="spark://local",
        types={
            "int": "INT",
            "bigint": "BIGINT",
            "double": "DOUBLE",
            "text": "STRING",
            "bool": "BOOLEAN",
            "timestamp": "TIMESTAMP",
            "date": "DATE",
        },
        reported_types={
            "int": "int",
            "bigint": "bigint",
            "double": "double",
            "text": "string",
            "bool": "boolean",
            "timestamp": "timestamp",
            "date": "date",
        },
        table_suffix=" USING parquet",
        needs_java=True,
        session_fixture="spark_session",
        slow=True,
    ),
    Engine(
        name="chdb",
        dialect="clickhouse",
        module="chdb.dbapi",
        url="chdb://",
        types={
            "int": _nullable("Int32"),
            "bigint": _nullable("Int64"),
            "double": _nullable("Float64"),
            "text": _nullable("String"),
            "bool": _nullable("Bool"),
            "timestamp": _nullable("DateTime64(6, 'UTC')"),
            "date": _nullable("Date32"),
        },
        reported_types={
            "int": "Nullable(Int32)",
            "bigint": "Nullable(Int64)",
            "double": "Nullable(Float64)",
            "text": "Nullable(String)",
            "bool": "Nullable(Bool)",
            "timestamp": "Nullable(DateTime64(6, 'UTC'))",
            "date": "Nullable(Date32)",
        },
        table_suffix=" ENGINE = MergeTree ORDER BY tuple()",
    ),
)

ENGINE_NAMES: tuple[str, ...] = tuple(engine.name for engine in ENGINES)


def engine_named(name: str) -> Engine:
    """The engine called ``name``."""
    for engine in ENGINES:
        if engine.name == name:
            return engine
    raise KeyError(f"no engine named {name!r}; known: {', '.join(ENGINE_NAMES)}")


def required_engines() -> frozenset[str]:
    """The engines ``PW_TEST_REQUIRE`` names; an unknown name is an error."""
    names = {part.strip() for part in os.environ.get(REQUIRE_ENV, "").split(",") if part.strip()}
    unknown = names - set(ENGINE_NAMES)
    if unknown:
        known = ", ".join(ENGINE_NAMES)
        raise ValueError(f"{REQUIRE_ENV} names unknown engines {sorted(unknown)}; known: {known}")
    return frozenset(names)


def require_available(engine: Engine) -> None:
    """Skip the test when ``engine`` cannot run here, or fail it when ``PW_TEST_REQUIRE``
    names the engine."""
    reason = engine.unavailable_reason()
    if reason is None:
        return
    if engine.required:
        pytest.fail(f"{reason}; {REQUIRE_ENV} requires {engine.name}", pytrace=False)
    pytest.skip(reason)


_counter = itertools.count(1)


def unique_schema_name(prefix: str = "pw_test") -> str:
    """A schema name no other test (in this or another process) uses: lower case, < 40 chars."""
    return f"{prefix}_{os.getpid()}_{next(_counter)}_{secrets.token_hex(3)}"


@contextlib.contextmanager
def temporary_schema(conn: Connection, prefix: str = "pw_test") -> Iterator[str]:
    """Create a unique schema on ``conn`` and drop it (and its tables) afterwards."""
    name = unique_schema_name(prefix)
    conn.create_schema(name)
    try:
        yield name
    finally:
        conn.drop_schema(name)
