"""The generated DDL executed on real engines: create -> create again -> migrate, catalog checked.

Every executable engine (SQLite, DuckDB, PostgreSQL, MariaDB, Spark local, ClickHouse via chDB)
runs the same scenario through the shared ``engine`` / ``connection`` fixtures; the columns each
engine reports are compared with ``column_name`` and with the declared types, and the rows
written before a migration are read back after it. Spark work is batched into one scenario.
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from engines import Engine, unique_schema_name
from sqlglot import exp

from personas_warehouse.model import Audience, ComputedTrait, Space, TraitType
from personas_warehouse.naming import column_names
from personas_warehouse.runner.connections import Connection, connect_url, timestamp_text
from personas_warehouse.sql.ddl import (
    create_statements,
    data_type,
    drop_column_statements,
    migrate_statements,
    migration_steps,
    synced_tables,
    widening_check_queries,
)
from personas_warehouse.sql.render import render
from personas_warehouse.warehouses import Capabilities, Upsert, capabilities

T = TraitType

# Keys no warehouse takes as they are: spaces, quotes, unicode, reserved words, 300 characters,
# a leading digit, a key that is one of the tables' own columns.
AWKWARD = {
    "first name": T.STRING,
    'it\'s "quoted"': T.JSON,
    "café ünïcode": T.BOOLEAN,
    "select": T.INTEGER,
    "order": T.NUMBER,
    "x" * 300: T.TIMESTAMP,
    "2fa enabled": T.BOOLEAN,
    "user_id": T.INTEGER,
    "back`tick": T.STRING,
    "semi;colon--": T.NUMBER,
}
AUDIENCES = ["from", "日本語 audience", "Group By"]
# Traits widened by the migration: INTEGER -> NUMBER, NUMBER -> STRING, BOOLEAN -> STRING in the
# first step; TIMESTAMP -> STRING, INTEGER -> STRING in the second.
FIRST = {"select": T.NUMBER, "order": T.STRING, "café ünïcode": T.STRING}
SECOND = {"x" * 300: T.STRING, "user_id": T.STRING}
ADDED_FIRST = {"new key ✓": T.TIMESTAMP, "limit": T.INTEGER}
ADDED_AUDIENCE = "9 lives"

# Values written before the migration: one user with values, one with others, one all NULL.
AT = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
WHEN = dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
ROWS: dict[str, dict[str, Any]] = {
    "u1": {
        "select": 2**53,
        "order": 0.1,
        "café ünïcode": True,
        "x" * 300: WHEN,
        "user_id": -42,
        "semi;colon--": 1 / 3,
        "first name": "Zoë 'O' \\ \"x\"",
    },
    "u2": {
        "select": -7,
        "order": 123456789.12345679,
        "café ünïcode": False,
        "x" * 300: dt.datetime(1999, 12, 31, 23, 0, tzinfo=dt.UTC),
        "user_id": 2**63 - 1,
        "semi;colon--": 1e300,
        "first name": "",
    },
    "u3": {},
}


def space_of(schema: str, traits: Mapping[str, TraitType], audiences: Sequence[str]) -> Space:
    return Space(
        traits=[ComputedTrait(key, type_) for key, type_ in traits.items()],
        audiences=[Audience(key) for key in audiences],
        schema=schema,
    )


def awkward_schema(caps: Capabilities) -> str:
    """A unique schema name full of awkward characters (word characters only where required)."""
    base = unique_schema_name("pw_ddl")
    if caps.word_schema_names:
        return base.replace("pw_ddl", "PW_Ddl")
    return f'{base} "q" it\'s é'


# How a catalog spells a declared type where it is not the declared type itself.
CATALOG_SPELLING = {
    "mysql": {"BOOLEAN": "TINYINT(1)", "BIGINT": "BIGINT(20)", "JSON": "LONGTEXT"},
}


def same_type(caps: Capabilities, declared: str, reported: str) -> bool:
    """Whether the catalog's ``reported`` type is the ``declared`` one (as sqlglot trees).

    The declared type is taken as the DDL writes it (sqlglot writes BOOLEAN as INTEGER on
    SQLite), then compared with the engine's report read in the same dialect.
    """
    spelled = CATALOG_SPELLING.get(caps.name, {}).get(declared.upper(), declared)
    written = render(data_type(spelled, caps), caps)
    want = exp.DataType.build(written, dialect=caps.sqlglot_dialect)
    got = exp.DataType.build(reported, dialect=caps.sqlglot_dialect)
    return bool(want == got)


def check_catalog(conn: Connection, space: Space, caps: Capabilities, *, ordered: bool) -> None:
    """The engine reports exactly the expected tables, columns and types.

    Right after CREATE the order is the declared one; after a migration, added or rebuilt
    columns may sit elsewhere (ADD COLUMN appends), so only the set is compared.
    """
    tables = synced_tables(space, caps)
    assert conn.tables(space.schema) == sorted(tables)
    names = column_names(space, caps)
    for table, columns in tables.items():
        reported = conn.columns(space.schema, table)
        expected = [c.name for c in columns]
        if ordered:
            assert list(reported) == expected, table
        else:
            assert sorted(reported) == sorted(expected), table
        for column in columns:
            assert same_type(caps, column.type, reported[column.name]), (
                table,
                column.name,
                column.type,
                reported[column.name],
            )
            if column.key is not None:
                assert column.name == names[column.key]


def run(conn: Connection, statements: Sequence[str]) -> None:
    for statement in statements:
        conn.execute(statement)


def migrate(conn: Connection, old: Space, new: Space, caps: Capabilities, **kw: bool) -> None:
    """Run a migration as a runner does: each atomic step in one transaction."""
    for step in migration_steps(old, new, caps, **kw):
        if step.atomic and conn.supports_transactions and conn.transactional_ddl:
            with conn.transaction():
                run(conn, step.statements)
        else:
            run(conn, step.statements)


def insert_rows(conn: Connection, space: Space, caps: Capabilities) -> None:
    """Write ROWS into users and identifies (explicit column lists, bound parameters)."""
    names = column_names(space, caps)
    versioned = caps.upsert is Upsert.REPLACING_MERGE_TREE
    for table in ("users", "identifies"):
        for user, values in ROWS.items():
            row: dict[str, Any] = {"id": user if table == "users" else f"m-{user}"}
            if table == "identifies":
                row |= {"user_id": user, "timestamp": AT, "received_at": AT}
            else:
                row |= {"timestamp": AT}
            if versioned:
                row["version"] = 1
            row |= {names[key]: value for key, value in values.items()}
            quoted = ", ".join(conn.quote(c) for c in row)
            marks = ", ".join([conn.placeholder] * len(row))
            conn.execute(
                f"INSERT INTO {conn.qualified(space.schema, table)} ({quoted}) VALUES ({marks})",
                list(row.values()),
            )


def read_rows(
    conn: Connection, space: Space, caps: Capabilities, table: str, keys: Sequence[str]
) -> dict[str, dict[str, Any]]:
    names = column_names(space, caps)
    key_column = "user_id" if table == "identifies" else "id"
    columns = ", ".join(conn.quote(names[key]) for key in keys)
    rows = conn.query(
        f"SELECT {conn.quote(key_column)}, {columns} FROM {conn.qualified(space.schema, table)}"
    )
    return {row[0]: dict(zip(keys, row[1:], strict=True)) for row in rows}


def expected_text(value: Any, before: TraitType) -> str | None:
    """The text a widened value must read as."""
    if value is None:
        return None
    if before is T.BOOLEAN:
        return "true" if value else "false"
    if before is T.TIMESTAMP:
        return timestamp_text(value)
    return str(value)


def check_values(
    conn: Connection, space: Space, caps: Capabilities, widened: Mapping[str, TraitType]
) -> None:
    """Every value written before the migrations reads back converted, without loss."""
    keys = list(widened)
    for table in ("users", "identifies"):
        got = read_rows(conn, space, caps, table, keys)
        assert sorted(got) == sorted(ROWS), table
        for user, values in ROWS.items():
            for key, before in widened.items():
                value, read = values.get(key), got[user][key]
                after = space.trait_types[key]
                if value is None:
                    assert read is None, (table, user, key, read)
                elif after is T.NUMBER:
                    assert isinstance(read, float), (table, key, read)
                    assert read == float(value), (table, key, read)
                elif before is T.NUMBER:
                    assert isinstance(read, str), (table, key, read)
                    assert float(read) == value, (table, key, read)  # round-trips exactly
                else:
                    assert read == expected_text(value, before), (table, user, key, read)


def test_create_twice_migrate_and_catalog(engine: Engine, connection: Connection) -> None:
    """create -> create again -> widen and add -> widen more -> drop, on one real engine."""
    conn = connection
    caps = capabilities(engine.dialect)
    schema = awkward_schema(caps)
    v1 = space_of(schema, AWKWARD, AUDIENCES)
    v2 = space_of(schema, {**AWKWARD, **FIRST, **ADDED_FIRST}, [*AUDIENCES, ADDED_AUDIENCE])
    v3 = space_of(schema, {**AWKWARD, **FIRST, **ADDED_FIRST, **SECOND}, v2.audience_keys)
    if not caps.schemas:
        conn.create_schema(schema)  # SQLite: the runner attaches a database for the schema
    try:
        statements = create_statements(v1, caps)
        run(conn, statements)
        check_catalog(conn, v1, caps, ordered=True)
        insert_rows(conn, v1, caps)
        run(conn, statements)  # again: nothing changes, rows stay
        check_catalog(conn, v1, caps, ordered=True)
        assert len(read_rows(conn, v1, caps, "users", ["select"])) == len(ROWS)

        migrate(conn, v1, v2, caps)
        check_catalog(conn, v2, caps, ordered=False)
        check_values(conn, v2, caps, {k: AWKWARD[k] for k in FIRST})
        new = read_rows(conn, v2, caps, "users", [*ADDED_FIRST, ADDED_AUDIENCE])
        assert all(v is None for values in new.values() for v in values.values())

        migrate(conn, v2, v3, caps)
        run(conn, create_statements(v3, caps))  # create stays idempotent after migrations
        check_catalog(conn, v3, caps, ordered=False)
        check_values(conn, v3, caps, {k: AWKWARD[k] for k in [*FIRST, *SECOND]})

        # Removal is explicit: drop one trait and one audience, everything else survives.
        gone = ["back`tick", "from"]
        run(conn, drop_column_statements(v3, gone, caps))
        v4 = space_of(
            schema,
            {k: t for k, t in v3.trait_types.items() if k not in gone},
            [a for a in v3.audience_keys if a not in gone],
        )
        check_catalog(conn, v4, caps, ordered=False)
        check_values(conn, v4, caps, {k: AWKWARD[k] for k in [*FIRST, *SECOND]})
    finally:
        conn.drop_schema(schema)


def test_migrate_statements_run_as_written_on_sqlite() -> None:
    """The flat list (BEGIN ... COMMIT around the rebuild) runs as it is on a plain connection."""
    raw = sqlite3.connect(":memory:", isolation_level=None)
    raw.execute("ATTACH DATABASE ':memory:' AS \"personas_default\"")
    old = Space(traits=[ComputedTrait("n", T.NUMBER), ComputedTrait("b", T.BOOLEAN)])
    new = Space(traits=[ComputedTrait("n", T.STRING), ComputedTrait("b", T.STRING)])
    for statement in create_statements(old, "sqlite"):
        raw.execute(statement)
    values = [(f"u{i}", v, i % 2 == 0) for i, v in enumerate([0.1, 1 / 3, 2.0**60, 5e-324])]
    values.append(("none", None, None))
    raw.executemany(
        'INSERT INTO "personas_default"."users" ("id", "n", "b") VALUES (?, ?, ?)', values
    )
    statements = migrate_statements(old, new, "sqlite")
    assert statements[0] == "BEGIN TRANSACTION"
    assert statements[-1] == "COMMIT"
    for statement in statements:
        raw.execute(statement)
    query = 'SELECT "id", "n", "b" FROM "personas_default"."users"'
    rows = {user: (n, b) for user, n, b in raw.execute(query)}
    for user, number, flag in values:
        text, flag_text = rows[user]
        if number is None:
            assert (text, flag_text) == (None, None)
            continue
        assert float(text) == number
        assert flag_text == ("true" if flag else "false")
    assert rows["u0"][0] == "0.1"  # the shortest text where 15 digits are enough
    assert not math.isnan(float(rows["u1"][0]))


def test_migrate_statements_run_as_written_on_duckdb() -> None:
    """Widening with USING on DuckDB: TIMESTAMP -> STRING is ISO-8601 UTC text."""
    conn = connect_url("duckdb://")
    old = Space(traits=[ComputedTrait("t", T.TIMESTAMP)])
    new = Space(traits=[ComputedTrait("t", T.STRING)])
    run(conn, create_statements(old, "duckdb"))
    conn.execute(
        'INSERT INTO "personas_default"."users" ("id", "t") VALUES (?, ?), (?, ?)',
        ["a", WHEN, "b", None],
    )
    run(conn, migrate_statements(old, new, "duckdb"))
    rows = dict(conn.query('SELECT "id", "t" FROM "personas_default"."users"'))
    assert rows == {"a": "2024-02-29 21:59:59.123456+00:00", "b": None}
    conn.close()


def test_timestamp_text_matches_the_runner() -> None:
    """The widened text is the runner's own UTC text, parsed back to the same instant."""
    assert dt.datetime.fromisoformat(timestamp_text(WHEN)) == WHEN


def test_widening_check_finds_integers_a_double_cannot_hold(
    engine: Engine, connection: Connection
) -> None:
    """INTEGER -> NUMBER loses digits past 2**53: the check query counts those rows."""
    conn = connection
    caps = capabilities(engine.dialect)
    schema = unique_schema_name("pw_ddl")
    old = space_of(schema, {"n": T.INTEGER}, [])
    new = space_of(schema, {"n": T.NUMBER}, [])
    if not caps.schemas:
        conn.create_schema(schema)
    try:
        run(conn, create_statements(old, caps))
        version = {"version": 1} if caps.upsert is Upsert.REPLACING_MERGE_TREE else {}
        for user, value in [("a", 2**53), ("b", -(2**53) - 1), ("c", None), ("d", 2**63 - 1)]:
            row = {"id": user, "timestamp": AT, **version, "n": value}
            quoted = ", ".join(conn.quote(c) for c in row)
            marks = ", ".join([conn.placeholder] * len(row))
            conn.execute(
                f"INSERT INTO {conn.qualified(schema, 'users')} ({quoted}) VALUES ({marks})",
                list(row.values()),
            )
        identifies, users = widening_check_queries(old, new, caps)
        assert conn.query(identifies) == [(0,)]
        assert conn.query(users) == [(2,)]
    finally:
        conn.drop_schema(schema)
