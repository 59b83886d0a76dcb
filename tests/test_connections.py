"""The connection layer on every real engine: statements, parameters, time stamps,
transactions and the catalog, each checked by reading rows back."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from engines import Engine, engine_named, require_available, temporary_schema

from personas_warehouse.runner.connections import (
    KINDS,
    Connection,
    connect_url,
    timestamp_text,
    wrap_connection,
)
from personas_warehouse.warehouses import capabilities

PLUS_2 = dt.timezone(dt.timedelta(hours=2))
MINUS_7 = dt.timezone(dt.timedelta(hours=-7))

MOMENTS = [
    dt.datetime(2024, 5, 1, 12, 34, 56, 123456, tzinfo=PLUS_2),
    dt.datetime(2024, 5, 1, 3, 34, 56, 123457, tzinfo=MINUS_7),  # 1 µs after the first
    dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    dt.datetime(2038, 1, 19, 3, 14, 8, tzinfo=dt.UTC),
    # 01:30 happens twice in New York on this day: the first, then the second.
    dt.datetime(2024, 11, 3, 5, 30, tzinfo=dt.UTC),
    dt.datetime(2024, 11, 3, 6, 30, tzinfo=dt.UTC),
]

TEXTS = [
    "plain",
    "it's",
    'double "quote"',
    "back\\slash \\' \\n",
    "50% off %s %(name)s",
    "${spark.app.name} ${x}",
    "line\nbreak\ttab",
    "café ünïcode 日本語 😀",
    "",
    "?",
]


def as_instant(value: Any) -> dt.datetime:
    """A time stamp read back: a datetime, or the text SQLite stores."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    moment: dt.datetime = value
    assert moment.utcoffset() == dt.timedelta(0), f"{moment!r} is not in UTC"
    return moment


def create(conn: Connection, engine: Engine, schema: str, table: str, **columns: str) -> str:
    """Create ``schema.table`` with ``columns`` (name=logical type); return its quoted name."""
    conn.execute(engine.create_table_sql(conn, schema, table, columns))
    return conn.qualified(schema, table)


class Boom(Exception):
    """Raised inside a transaction block to make it roll back."""


def run_in_transaction(conn: Connection, *statements: str, fail: bool = False) -> None:
    """Run ``statements`` in one transaction block; raise :class:`Boom` at its end if ``fail``."""
    with conn.transaction():
        for sql in statements:
            conn.execute(sql)
        if fail:
            raise Boom


def count(conn: Connection, table: str, where: str = "1 = 1") -> int:
    """How many rows ``table`` holds (matching ``where``)."""
    ((n,),) = conn.query(f"SELECT COUNT(*) FROM {table} WHERE {where}")
    return int(n)


def test_execute_then_query_reads_rows_back(
    engine: Engine, connection: Connection, schema_name: str
) -> None:
    table = create(connection, engine, schema_name, "t", id="int", name="text")
    connection.execute(f"INSERT INTO {table} VALUES (1, 'one')")
    connection.execute(f"INSERT INTO {table} VALUES (2, 'two')")
    assert connection.query(f"SELECT id, name FROM {table} ORDER BY id") == [
        (1, "one"),
        (2, "two"),
    ]
    assert connection.kind in KINDS
    assert connection.kind == engine.dialect  # the kinds are named as sqlglot names them


def test_parameters_bind_with_the_paramstyle(
    engine: Engine, connection: Connection, schema_name: str
) -> None:
    table = create(
        connection, engine, schema_name, "p", id="int", txt="text", num="double", big="bigint"
    )
    p = connection.placeholder
    insert = f"INSERT INTO {table} VALUES ({p}, {p}, {p}, {p})"
    rows = [(i, text, i * 1.25 - 3.0, (2**62 + i) * (-1) ** i) for i, text in enumerate(TEXTS)]
    connection.execute(insert, rows[0])
    connection.executemany(insert, rows[1:])
    connection.execute(insert, (100, None, None, None))
    got = connection.query(f"SELECT id, txt, num, big FROM {table} ORDER BY id")
    assert got == [*rows, (100, None, None, None)]
    # A parameter in a WHERE clause, including text that looks like a placeholder.
    for text in ("it's", "?", "50% off %s %(name)s"):
        assert connection.query(f"SELECT id FROM {table} WHERE txt = {p}", (text,)) == [
            (TEXTS.index(text),)
        ]


def test_a_literal_percent_next_to_parameters(connection: Connection) -> None:
    """With the ``format`` style a literal ``%`` is written ``%%``, on every such engine."""
    percent = "%%" if connection.paramstyle == "format" else "%"
    p = connection.placeholder
    assert connection.query(f"SELECT '50{percent}', {p}", ("x",)) == [("50%", "x")]
    # Without parameters the statement is sent as it is.
    assert connection.query("SELECT '50%'") == [("50%",)]


def test_many_values_round_trip_through_both_paths(
    engine: Engine, connection: Connection, schema_name: str
) -> None:
    """``execute`` and ``executemany`` (batched literals on Spark and chDB) store the same."""
    table = create(
        connection,
        engine,
        schema_name,
        "v",
        id="int",
        flag="bool",
        num="double",
        day="date",
        txt="text",
    )
    p = connection.placeholder
    insert = f"INSERT INTO {table} VALUES ({p}, {p}, {p}, {p}, {p})"
    values = [
        (True, 0.1, dt.date(2024, 2, 29), "it's \\ ${x} 100%"),
        (False, -2.5e-300, dt.date(1970, 1, 1), "😀"),
        (None, 1e300, None, None),
    ]
    single = [(i, *row) for i, row in enumerate(values)]
    many = [(i + 10, *row) for i, row in enumerate(values)]
    for row in single:
        connection.execute(insert, row)
    connection.executemany(insert, many)
    got = connection.query(f"SELECT id, flag, num, day, txt FROM {table} ORDER BY id")
    by_path = [got[: len(values)], got[len(values) :]]
    for rows, sent in zip(by_path, (single, many), strict=True):
        for read, wrote in zip(rows, sent, strict=True):
            flag, num, day, txt = read[1:]
            assert (flag, num, txt) == (wrote[1], wrote[2], wrote[4])  # 1 == True on SQLite
            sent_day = wrote[3]
            if isinstance(day, str):  # SQLite stores dates as ISO text
                assert isinstance(sent_day, dt.date)
                assert day == sent_day.isoformat()
            else:
                assert day == sent_day


@pytest.fixture(params=["UTC", "America/New_York"])
def local_zone(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test with the Python process's local time zone set to the given one."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    try:
        yield request.param
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def test_aware_datetimes_round_trip_as_the_same_instant(
    engine: Engine, connection: Connection, schema_name: str, local_zone: str
) -> None:
    """Bound with any offset, read back in UTC, whatever the process's local time zone."""
    table = create(connection, engine, schema_name, "ts", id="int", moment="timestamp")
    p = connection.placeholder
    insert = f"INSERT INTO {table} VALUES ({p}, {p})"
    connection.execute(insert, (0, MOMENTS[0]))
    connection.executemany(insert, list(enumerate(MOMENTS))[1:])
    got = connection.query(f"SELECT id, moment FROM {table} ORDER BY id")
    assert [(i, as_instant(moment)) for i, moment in got] == list(enumerate(MOMENTS))
    # Compared with a parameter carrying another offset of the same instant.
    same_instant = MOMENTS[0].astimezone(MINUS_7)
    assert connection.query(f"SELECT id FROM {table} WHERE moment = {p}", (same_instant,)) == [(0,)]
    later = connection.query(
        f"SELECT id FROM {table} WHERE moment > {p} ORDER BY id", (MOMENTS[0],)
    )
    assert [i for (i,) in later] == [i for i, m in enumerate(MOMENTS) if m > MOMENTS[0]]


def test_query_columns_is_query_transposed(
    engine: Engine, connection: Connection, schema_name: str, local_zone: str
) -> None:
    """Column by column, the same values as ``query`` (datetimes aware UTC, NULLs kept), and
    ``[]`` for no row."""
    table = create(
        connection, engine, schema_name, "cols", id="int", moment="timestamp", name="text"
    )
    p = connection.placeholder
    insert = f"INSERT INTO {table} VALUES ({p}, {p}, {p})"
    rows = [(i, m, None if i % 3 == 0 else f"n{i}") for i, m in enumerate(MOMENTS)]
    rows.append((len(MOMENTS), None, "no moment"))
    connection.executemany(insert, rows)
    sql = f"SELECT id, moment, name FROM {table} ORDER BY id"
    by_row = connection.query(sql)
    by_column = connection.query_columns(sql)
    assert by_column == [tuple(column) for column in zip(*by_row, strict=True)]
    ids, moments, names = by_column
    assert list(ids) == [i for i, _, _ in rows]
    assert [None if m is None else as_instant(m) for m in moments] == [m for _, m, _ in rows]
    assert list(names) == [n for _, _, n in rows]
    assert connection.query_columns(f"SELECT id FROM {table} WHERE id < 0") == []


def test_naive_datetimes_are_bound_as_utc(
    engine: Engine, connection: Connection, schema_name: str
) -> None:
    table = create(connection, engine, schema_name, "naive", id="int", moment="timestamp")
    p = connection.placeholder
    connection.execute(f"INSERT INTO {table} VALUES ({p}, {p})", (1, dt.datetime(2024, 1, 2, 3, 4)))
    ((moment,),) = connection.query(f"SELECT moment FROM {table}")
    assert as_instant(moment) == dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.UTC)


def test_a_transaction_commits_at_the_end(
    engine: Engine, connection: Connection, schema_name: str
) -> None:
    table = create(connection, engine, schema_name, "tx", id="int")
    with connection.transaction():
        assert connection.in_transaction
        connection.execute(f"INSERT INTO {table} VALUES (1)")
        connection.execute(f"INSERT INTO {table} VALUES (2)")
    assert not connection.in_transaction
    assert connection.query(f"SELECT id FROM {table} ORDER BY id") == [(1,), (2,)]


def test_a_transaction_rolls_back_on_an_exception(
    engine: Engine, connection: Connection, schema_name: str
) -> None:
    if not connection.supports_transactions:
        pytest.skip(f"{connection.kind} has no transactions")
    table = create(connection, engine, schema_name, "tx", id="int")
    connection.execute(f"INSERT INTO {table} VALUES (1)")
    with pytest.raises(Boom):
        run_in_transaction(connection, f"INSERT INTO {table} VALUES (2)", fail=True)
    assert connection.query(f"SELECT id FROM {table}") == [(1,)]


def test_a_transaction_rolls_back_on_a_failing_statement(
    engine: Engine, connection: Connection, schema_name: str
) -> None:
    if not connection.supports_transactions:
        pytest.skip(f"{connection.kind} has no transactions")
    table = create(connection, engine, schema_name, "tx", id="int")
    missing = connection.qualified(schema_name, "missing")
    with pytest.raises(Exception) as raised:  # noqa: PT011 (each driver has its own error class)
        run_in_transaction(
            connection, f"INSERT INTO {table} VALUES (2)", f"INSERT INTO {missing} VALUES (3)"
        )
    assert not isinstance(raised.value, AssertionError)
    assert count(connection, table) == 0
    # The connection is usable again afterwards.
    connection.execute(f"INSERT INTO {table} VALUES (4)")
    assert connection.query(f"SELECT id FROM {table}") == [(4,)]


def test_an_inner_transaction_joins_the_outer_one(
    engine: Engine, connection: Connection, schema_name: str
) -> None:
    if not connection.supports_transactions:
        pytest.skip(f"{connection.kind} has no transactions")
    table = create(connection, engine, schema_name, "tx", id="int")

    def inner_then_fail() -> None:
        with connection.transaction():
            run_in_transaction(connection, f"INSERT INTO {table} VALUES (1)")
            assert connection.in_transaction
            raise Boom

    with pytest.raises(Boom):
        inner_then_fail()
    assert count(connection, table) == 0


def test_ddl_in_a_transaction(engine: Engine, connection: Connection, schema_name: str) -> None:
    """Rolled back with the transaction, except where DDL commits at once (MySQL)."""
    if not connection.supports_transactions:
        pytest.skip(f"{connection.kind} has no transactions")
    table = create(connection, engine, schema_name, "tx", id="int")
    ddl = engine.create_table_sql(connection, schema_name, "made_inside", {"id": "int"})
    with pytest.raises(Boom):
        run_in_transaction(
            connection,
            f"INSERT INTO {table} VALUES (1)",
            ddl,
            f"INSERT INTO {table} VALUES (2)",
            fail=True,
        )
    ids = [i for (i,) in connection.query(f"SELECT id FROM {table} ORDER BY id")]
    if connection.transactional_ddl:
        assert ids == []
        assert connection.tables(schema_name) == ["tx"]
    else:
        # The CREATE TABLE committed the first insert; only the second was rolled back.
        assert ids == [1]
        assert connection.tables(schema_name) == ["made_inside", "tx"]


def test_without_transactions_the_block_undoes_nothing(
    engine: Engine, connection: Connection, schema_name: str
) -> None:
    if connection.supports_transactions:
        pytest.skip(f"{connection.kind} has transactions")
    table = create(connection, engine, schema_name, "tx", id="int")
    with pytest.raises(Boom):
        run_in_transaction(connection, f"INSERT INTO {table} VALUES (1)", fail=True)
    assert connection.query(f"SELECT id FROM {table}") == [(1,)]


def test_the_catalog_reports_columns_and_tables(
    engine: Engine, connection: Connection, schema_name: str
) -> None:
    kinds = {"id": "int", "name": "text", "score": "double", "seen_at": "timestamp"}
    create(connection, engine, schema_name, "second", **kinds)
    create(connection, engine, schema_name, "first", id="bigint", flag="bool", day="date")
    assert connection.columns(schema_name, "second") == {
        name: engine.reported_types[kind] for name, kind in kinds.items()
    }
    assert list(connection.columns(schema_name, "first")) == ["id", "flag", "day"]
    assert connection.columns(schema_name, "first")["id"] == engine.reported_types["bigint"]
    assert connection.tables(schema_name) == ["first", "second"]
    assert connection.columns(schema_name, "absent") == {}
    connection.drop_schema(schema_name)
    assert connection.tables(schema_name) == []
    assert connection.columns(schema_name, "first") == {}


def test_hostile_schema_names_are_quoted_for_the_engine(
    engine: Engine, connection: Connection, schema_name: str
) -> None:
    """A quote, a backslash and a backtick in a schema name: created, listed, dropped."""
    if capabilities(engine.dialect).word_schema_names:
        pytest.skip(f"{engine.name} takes only word-character schema names")
    name = schema_name + "_q'\\x`\""
    connection.create_schema(name)
    try:
        connection.execute(f"CREATE TABLE {connection.qualified(name, 't')} (id INTEGER)")
        assert connection.tables(name) == ["t"]
        assert connection.tables(schema_name) == []  # not a neighbour whose name it resembles
    finally:
        connection.drop_schema(name)
    assert connection.tables(name) == []


def test_executemany_sends_many_rows(
    engine: Engine, connection: Connection, schema_name: str
) -> None:
    """More rows than one batch holds, then a statement that is not INSERT ... VALUES."""
    table = create(connection, engine, schema_name, "many", id="int", name="text")
    p = connection.placeholder
    rows = [(i, f"row {i}") for i in range(2_345)]
    connection.executemany(f"INSERT INTO {table} VALUES ({p}, {p})", rows)
    connection.executemany(f"INSERT INTO {table} VALUES ({p}, {p})", [])
    assert connection.query(f"SELECT COUNT(*), SUM(id), MIN(name), MAX(id) FROM {table}") == [
        (2_345, sum(range(2_345)), "row 0", 2_344)
    ]
    connection.executemany(f"INSERT INTO {table} SELECT {p}, {p}", [(-1, "a"), (-2, "b")])
    assert connection.query(f"SELECT id, name FROM {table} WHERE id < 0 ORDER BY id") == [
        (-2, "b"),
        (-1, "a"),
    ]


def test_wrap_connection_recognises_the_driver(connection: Connection) -> None:
    wrapped = wrap_connection(connection.raw)
    assert type(wrapped) is type(connection)
    assert wrapped.kind == connection.kind
    assert wrapped.query("SELECT 1") == [(1,)]
    wrapped.close()  # leaves the driver's connection open for its owner
    assert wrapped.closed
    assert connection.query("SELECT 2") == [(2,)]
    assert wrap_connection(connection) is connection


def test_a_closed_connection_says_so() -> None:
    conn = connect_url("sqlite://")
    conn.close()
    conn.close()  # twice is fine
    with pytest.raises(ValueError, match="closed"):
        conn.query("SELECT 1")


@pytest.mark.parametrize(
    "thing",
    [object(), "sqlite://", 42, Decimal(1), sqlite3.connect(":memory:").cursor()],
    ids=["object", "url", "int", "decimal", "sqlite3-cursor"],
)
def test_wrap_connection_rejects_what_it_does_not_know(thing: object) -> None:
    with pytest.raises(ValueError, match="supported"):
        wrap_connection(thing)


@pytest.mark.parametrize(
    "url",
    ["oracle://scott@db/orcl", "no scheme here", "spark://remote:7077", "chdb://host/path"],
)
def test_connect_url_rejects_what_it_does_not_know(url: str) -> None:
    with pytest.raises(ValueError, match="use"):
        connect_url(url)


def test_chdb_keeps_one_data_path_per_process(tmp_path: Path) -> None:
    require_available(engine_named("chdb"))
    first = connect_url("chdb://")
    with pytest.raises(ValueError, match="one data path per process"):
        connect_url(f"chdb://{tmp_path}/other")
    # Closing a connection does not end the shared session: its tables stay.
    first.execute("CREATE TABLE IF NOT EXISTS default.pw_kept (id Int32) ENGINE = Memory")
    first.close()
    again = connect_url("chdb://")
    assert again.tables("default").count("pw_kept") == 1
    again.execute("DROP TABLE default.pw_kept")


def test_sqlite_files_and_attached_schemas(tmp_path: Path) -> None:
    path = tmp_path / "main.db"
    conn = connect_url(f"sqlite:///{path}")
    conn.create_schema("extra")
    conn.create_schema("extra")  # already there: nothing to do
    conn.execute('CREATE TABLE "extra"."t" (id INTEGER)')
    conn.execute('INSERT INTO "extra"."t" VALUES (1)')
    conn.close()
    assert (tmp_path / "main.extra.sqlite").exists()
    reopened = connect_url(f"sqlite:///{path}")
    reopened.create_schema("extra")
    assert reopened.query('SELECT id FROM "extra"."t"') == [(1,)]
    reopened.drop_schema("extra")
    assert reopened.tables("extra") == []
    with pytest.raises(ValueError, match="cannot be dropped"):
        reopened.drop_schema("main")


def test_timestamp_text_sorts_in_time_order() -> None:
    texts = [timestamp_text(m) for m in sorted(MOMENTS)]
    assert texts == sorted(texts)
    assert {len(t) for t in texts} == {len("2024-01-01 00:00:00.000000+00:00")}


# -- drivers handed over by their owner, not in autocommit mode ---------------------------


def _server_url(name: str) -> str:
    engine = engine_named(name)
    require_available(engine)
    url = engine.connection_url()
    assert url is not None
    return url


def test_a_wrapped_sqlite_connection_commits_each_statement(tmp_path: Path) -> None:
    path = tmp_path / "owned.db"
    owned = sqlite3.connect(path)  # the module's default: implicit transactions
    conn = wrap_connection(owned)
    conn.execute("CREATE TABLE t (id INTEGER)")
    conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(Boom):
        run_in_transaction(conn, "INSERT INTO t VALUES (2)", fail=True)
    other = sqlite3.connect(path)
    assert other.execute("SELECT id FROM t").fetchall() == [(1,)]
    other.close()
    owned.close()


def test_a_wrapped_postgres_connection_commits_each_statement() -> None:
    psycopg = pytest.importorskip("psycopg")
    url = _server_url("postgres")
    owned = psycopg.connect(url)  # not in autocommit mode
    conn = wrap_connection(owned)
    observer = connect_url(url)
    with temporary_schema(conn) as schema:
        table = conn.qualified(schema, "t")
        conn.execute(f"CREATE TABLE {table} (id INTEGER)")
        conn.execute(f"INSERT INTO {table} VALUES (%s)", (1,))
        assert observer.query(f"SELECT id FROM {table}") == [(1,)]
        with pytest.raises(Boom):
            run_in_transaction(conn, f"INSERT INTO {table} VALUES (2)", fail=True)
        assert observer.query(f"SELECT id FROM {table}") == [(1,)]
    observer.close()
    owned.close()


def test_a_wrapped_mysql_connection_commits_each_statement() -> None:
    pymysql = pytest.importorskip("pymysql")
    url = _server_url("mysql")
    observer = connect_url(url)
    parts = observer.raw  # reuse the observer's settings for the owner's connection
    owned = pymysql.connect(
        host=parts.host, port=parts.port, user=parts.user, password=parts.password or ""
    )
    owned.autocommit(False)
    conn = wrap_connection(owned)
    with temporary_schema(conn) as schema:
        table = conn.qualified(schema, "t")
        conn.execute(f"CREATE TABLE {table} (id INTEGER)")
        conn.execute(f"INSERT INTO {table} VALUES (%s)", (1,))
        assert observer.query(f"SELECT id FROM {table}") == [(1,)]
        with pytest.raises(Boom):
            run_in_transaction(conn, f"INSERT INTO {table} VALUES (2)", fail=True)
        assert observer.query(f"SELECT id FROM {table}") == [(1,)]
    observer.close()
    owned.close()


def test_mysql_schemas_compare_text_exactly() -> None:
    """The server default collation takes 'a' = 'A' = 'a '; schemas made here do not."""
    conn = connect_url(_server_url("mysql"))
    with temporary_schema(conn) as schema:
        table = conn.qualified(schema, "ids")
        conn.execute(f"CREATE TABLE {table} (id VARCHAR(20) PRIMARY KEY)")
        conn.executemany(f"INSERT INTO {table} VALUES (%s)", [("a",), ("A",), ("a ",)])
        assert conn.query(f"SELECT id FROM {table} WHERE id = %s", ("a",)) == [("a",)]
    conn.close()
