"""Hostile input on every executable engine: names and values that have broken SQL generators.

Hypothesis draws trait/audience keys and schema names (quotes, backticks, brackets, semicolons,
comment markers, ``$$``, unicode, reserved words, leading digits, names at and past the
identifier limit), string values (quotes, backslashes, ``\\'``, CR/LF/tab, control characters,
emoji, an injection attempt) and message/user ids that differ only by case, trailing spaces or
normalization. For every example, on the engine itself:

* the DDL (the library's own ``CREATE SCHEMA`` included) and the DML execute;
* the catalog shows exactly ``column_name`` of each key beside the tables' own columns;
* ``identifies`` holds exactly the events that went in, ``users`` and ``as_of_query`` equal
  ``IdentifiesLog(...).snapshot(...)`` (and the plain reference);
* no statement other than ours ran: the schema holds exactly our tables plus a canary table
  ``t`` (the one the injection attempt names), and no other schema appeared or vanished.

Schema names a warehouse does not accept (past its identifier limit; anything but word
characters on Spark) must raise :class:`InvalidSpaceError` from ``create_statements``.

Examples tried per engine are counted in :data:`TRIED` and printed (run with ``-s``).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from engines import Engine
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from reference import dedupe, reference_snapshot
from sqlglot import exp
from test_dml_engines import (
    assert_users_match,
    canonical,
    load,
    query_states,
    run,
    stored_events,
)

from personas_warehouse.errors import (
    InvalidSpaceError,
    PersonasWarehouseError,
    UnsupportedValueError,
)
from personas_warehouse.log import IdentifiesLog
from personas_warehouse.model import Audience, ComputedTrait, IdentifyEvent, Space, TraitType
from personas_warehouse.naming import IdentifierUnit, column_names
from personas_warehouse.runner.connections import Connection
from personas_warehouse.sql.ddl import create_statements
from personas_warehouse.sql.dml import (
    StatementTooLargeError,
    insert_rows,
    insert_statements,
    refresh_users_statements,
)
from personas_warehouse.sql.render import render
from personas_warehouse.sql.tables import identifies_columns, users_columns
from personas_warehouse.strategies import AWKWARD_KEYS
from personas_warehouse.warehouses import Capabilities, Upsert, capabilities

UTC = dt.UTC
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LOAD_TIME = dt.datetime(2030, 1, 1, tzinfo=UTC)

EXAMPLES = {"sqlite": 25, "duckdb": 25, "postgres": 15, "mysql": 15, "chdb": 10, "spark": 3}
"""Examples per engine in the default run (Spark: ~0.45 s per statement, ~12 per example)."""
SOAK_FACTOR = 20

TRIED: Counter[str] = Counter()
"""Examples tried per engine in this run (reported at the end of the module, ``-s``)."""

FRAGMENTS = (
    '"',
    "'",
    "`",
    "[",
    "]",
    ";",
    "--",
    "/*",
    "*/",
    "$$",
    "$tag$",
    "\\",
    "\\'",
    " ",
    "é",
    "日本",
    "🎉",
    "select",
    "DROP TABLE t",
    "1",
    "x",
    "_",
    "%",
    "?",
    ":name",
    "@",
    "{}",
)
"""Pieces hostile names and values are assembled from."""

HOSTILE_KEYS = (
    *AWKWARD_KEYS,
    'a"; DROP TABLE t; --',
    "`tick`",
    "[bracket]",
    "semi;colon",
    "-- comment",
    "/* block */",
    "$$dollar$$",
    "1st place",
    "table",
    "where",
    "x'); DROP TABLE t; --",
    "?",
    "%s",
)

HOSTILE_STRINGS = (
    "",
    " ",
    "'",
    "''",
    '"',
    "\\",
    "\\'",
    "\\\\'",
    "it's",
    "a\r\nb",
    "tab\there",
    "\r",
    "\n",
    "\x01\x02\x1b\x7f",
    "🎉👩‍👩‍👧",
    "x'); DROP TABLE t; --",
    '"); DROP TABLE t; --',
    "$$; DROP TABLE t; $$",
    "/* not a comment */",
    "-- not a comment",
    "%s %(x)s ? :1 $1",
    "é vs e\u0301",
    "trailing space ",
)

MESSAGE_IDS = ("a", "A", "m1", "m1 ", " m1", "é", "e\u0301", "ß", "ss", "'", '"', "\\", "🎉", "B")
"""Message ids that are all distinct in Python (case, trailing spaces, normalization)."""
USER_IDS = ("u", "U", "u ", "ü", "o'brien", 'say "hi"', "x'); DROP TABLE t; --", "\\u")

SCHEMA_LIST_SQL = {
    "sqlite": "PRAGMA database_list",
    "duckdb": "SELECT schema_name FROM information_schema.schemata",
    "postgres": "SELECT schema_name FROM information_schema.schemata",
    "mysql": "SELECT schema_name FROM information_schema.schemata",
    "spark": "SHOW DATABASES",
    "chdb": "SELECT name FROM system.databases",
}
"""How each engine lists its schemas (data, like ``Engine.types``)."""

DROP_SCHEMA_SQL = {
    "duckdb": "DROP SCHEMA IF EXISTS {} CASCADE",
    "postgres": "DROP SCHEMA IF EXISTS {} CASCADE",
    "mysql": "DROP DATABASE IF EXISTS {}",
    "spark": "DROP DATABASE IF EXISTS {} CASCADE",
    "chdb": "DROP DATABASE IF EXISTS {} SYNC",
}
"""How each engine drops a schema; the name is quoted by the library's renderer (the test
connection's ``quote`` leaves backslashes alone, which ClickHouse reads as escapes)."""


def _hostile_text(max_fragments: int = 5) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=max_fragments).map("".join)


def _keys() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(HOSTILE_KEYS),
        _hostile_text(),
        st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12),
    ).filter(lambda key: bool(key.strip()))


def _fit(caps: Capabilities, text: str, length: int) -> str:
    """``text`` cut or padded (with ``é``, 2 bytes) to ``length`` in the warehouse's unit."""
    out = ""
    for char in text * (length + 1):
        if caps.identifier_length(out + char) > length:
            break
        out += char
    while caps.identifier_length(out) < length:
        out += "x"
    return out


def schema_limit(caps: Capabilities) -> int | None:
    """The longest schema name the warehouse takes (``None``: no practical limit)."""
    limits = [n for n in (caps.identifier_limit, caps.schema_name_limit) if n is not None]
    return min(limits) if limits else None


def accepted(caps: Capabilities, space: Space, events: list[IdentifyEvent]) -> list[IdentifyEvent]:
    """The events the warehouse keeps apart; ids it cannot (trailing spaces where ids compare
    with PAD SPACE) must be refused with the documented error, then are left out."""
    if caps.ids_keep_trailing_spaces:
        return events
    padded = [e for e in events if e.message_id.endswith(" ") or e.user_id.endswith(" ")]
    for event in padded:
        with pytest.raises(UnsupportedValueError, match="ends with a space"):
            insert_statements(space, [event], caps, now=LOAD_TIME)
    return [e for e in events if e not in padded]


@st.composite
def schema_names(draw: st.DrawFn, caps: Capabilities) -> str:
    """A unique schema name the warehouse accepts, often hostile, sometimes at the limit."""
    suffix = "_" + secrets.token_hex(4)
    if caps.word_schema_names:
        body = draw(
            st.sampled_from(["select", "table", "default", "Mixed_Case", "x" * 40, "_lead"])
            | st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
        )
    else:
        body = draw(
            st.sampled_from(["pw_it's", 'pw "q"', "pw`tick`", "1lead", "pw;--", "pw/*x*/"])
            | _hostile_text().map(lambda s: "pw" + s)
        )
    if caps.bmp_identifiers:
        body = "".join(char for char in body if ord(char) <= 0xFFFF)
    name = body + suffix
    limit = schema_limit(caps)
    if limit is not None and draw(st.booleans()):
        name = _fit(caps, body, limit - len(suffix)) + suffix  # exactly at the limit
    elif limit is not None and caps.identifier_length(name) > limit:
        name = _fit(caps, body, limit - len(suffix)) + suffix
    return name


@st.composite
def hostile_spaces(draw: st.DrawFn, caps: Capabilities) -> Space:
    """STRING traits and audiences with hostile keys; schema name hostile too."""
    candidates = draw(st.lists(_keys(), min_size=1, max_size=4, unique=True))
    if caps.identifier_limit is not None and draw(st.booleans()):
        unit = "é" if caps.identifier_unit is IdentifierUnit.BYTES else "x"
        for length in (caps.identifier_limit, caps.identifier_limit + 1):
            candidates.append(_fit(caps, unit + "k" * length, length))
    split = draw(st.integers(0, len(candidates)))
    schema = draw(schema_names(caps))
    try:
        space = Space(
            traits=[ComputedTrait(k, TraitType.STRING) for k in candidates[:split]],
            audiences=[Audience(k) for k in candidates[split:]],
            schema=schema,
        )
        column_names(space, caps)
    except PersonasWarehouseError:  # keys sharing a column: refused, tested elsewhere
        assume(False)
    return space


@st.composite
def hostile_events(draw: st.DrawFn, space: Space) -> list[IdentifyEvent]:
    """Events with distinct hostile message ids, hostile user ids and string values; most on
    one instant, so ties are broken by message id (code-point order)."""
    ids = draw(st.lists(st.sampled_from(MESSAGE_IDS), min_size=1, max_size=8, unique=True))
    strings = st.sampled_from(HOSTILE_STRINGS) | st.text(
        st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20
    )
    events = []
    for message_id in ids:
        values: dict[str, Any] = {}
        for key in space.trait_keys:
            if draw(st.booleans()):
                values[key] = draw(strings | st.none())
        for key in space.audience_keys:
            if draw(st.booleans()):
                values[key] = draw(st.booleans())
        events.append(
            IdentifyEvent(
                message_id,
                draw(st.sampled_from(USER_IDS)),
                T0 + dt.timedelta(seconds=draw(st.integers(0, 1))),
                values,
            )
        )
    return events


# --------------------------------------------------------------------------------------------
# Checking one example on an engine
# --------------------------------------------------------------------------------------------


CASE_FOLDED_SCHEMAS = {"spark"}
"""Engines whose catalog keeps schema names in lower case (``Mixed`` is ``mixed``)."""


def catalog_name(engine: Engine, schema: str) -> str:
    """``schema`` as the engine's catalog lists it."""
    return schema.lower() if engine.name in CASE_FOLDED_SCHEMAS else schema


def schemas(conn: Connection, engine: Engine) -> set[str]:
    """The engine's schemas (attached databases on SQLite)."""
    rows = conn.query(SCHEMA_LIST_SQL[engine.name])
    if engine.name == "sqlite":
        return {str(row[1]) for row in rows}
    return {str(row[0]) for row in rows}


def _stable(names: set[str], mine: str) -> set[str]:
    """Schemas no concurrent test creates or drops: other tests' temporary schemas (``pw...``)
    and this example's own are left out."""
    return {n for n in names if not n.startswith("pw") and n != mine}


def quoted(caps: Capabilities, name: str) -> str:
    """``name`` as the library quotes an identifier for the warehouse."""
    return render(exp.to_identifier(name), caps)


def drop_schema(conn: Connection, engine: Engine, caps: Capabilities, schema: str) -> None:
    """Drop ``schema`` and its tables (SQLite: DETACH)."""
    if engine.name not in DROP_SCHEMA_SQL:
        conn.drop_schema(schema)
    else:
        conn.execute(DROP_SCHEMA_SQL[engine.name].format(quoted(caps, schema)))


def run_ddl(conn: Connection, caps: Capabilities, space: Space) -> None:
    """The library's own DDL, its CREATE SCHEMA included (SQLite: the schema is ATTACHed)."""
    if not caps.schemas:
        conn.create_schema(space.schema)
    for sql in create_statements(space, caps):
        conn.execute(sql)


Loader = Callable[[Connection, Space, Capabilities, list[IdentifyEvent]], None]


def load_text(
    conn: Connection, space: Space, caps: Capabilities, events: list[IdentifyEvent]
) -> None:
    """The text path: ``insert_statements``."""
    load(conn, space, caps, events, LOAD_TIME)


def load_parameters(
    conn: Connection, space: Space, caps: Capabilities, events: list[IdentifyEvent]
) -> None:
    """The parameter path: ``insert_rows`` + ``executemany``, then the users refresh."""
    style = "qmark" if conn.placeholder == "?" else "format"
    sql, rows = insert_rows(space, events, caps, paramstyle=style)  # type: ignore[arg-type]
    conn.executemany(sql, rows)
    run(conn, caps, refresh_users_statements(space, {e.user_id for e in events}, caps))


def check_example(  # noqa: PLR0917 (a test helper)
    conn: Connection,
    engine: Engine,
    caps: Capabilities,
    space: Space,
    events: list[IdentifyEvent],
    loader: Loader = load_text,
) -> None:
    """Load ``events`` into a fresh ``space.schema`` and check catalog, rows and side effects."""
    TRIED[engine.name] += 1
    events = accepted(caps, space, events)
    schema = space.schema
    listed = catalog_name(engine, schema)
    before = schemas(conn, engine)
    assert listed not in before
    try:
        run_ddl(conn, caps, space)
        canary = f"CREATE TABLE {quoted(caps, schema)}.t (x {engine.types['int']})"
        conn.execute(canary + engine.table_suffix)
        loader(conn, space, caps, events)
        names = column_names(space, caps)
        assert list(conn.columns(schema, "identifies")) == [
            c.name for c in identifies_columns(space, caps)
        ]
        assert list(conn.columns(schema, "users")) == [c.name for c in users_columns(space, caps)]
        assert set(names.values()) <= set(conn.columns(schema, "users"))
        assert conn.tables(schema) == sorted(["identifies", "sync_runs", "t", "users"])
        during = schemas(conn, engine)
        assert listed in during
        assert _stable(during, listed) == _stable(before, listed)
        stored = stored_events(conn, space, caps)
        assert len(stored) == len(events), "a message id collided (or a row was lost)"
        assert canonical(stored) == canonical(dedupe(events))
        assert_users_match(conn, space, caps, events)
        log = IdentifiesLog(space, events)
        for ts in (T0, T0 + dt.timedelta(seconds=1)):
            expected = log.snapshot(ts)
            assert expected == reference_snapshot(space, events, ts)
            assert query_states(conn, space, caps, ts) == expected, ts
    finally:
        drop_schema(conn, engine, caps, schema)
    assert listed not in schemas(conn, engine)


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
        database=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )


def _run(engine: Engine, connection: Connection, examples: int) -> None:
    caps = capabilities(engine.dialect)

    @_settings(examples)
    @given(data=st.data())
    def body(data: Any) -> None:
        space = data.draw(hostile_spaces(caps), label="space")
        events = data.draw(hostile_events(space), label="events")
        check_example(connection, engine, caps, space, events)

    body()
    print(f"\nhostile examples tried on {engine.name}: {TRIED[engine.name]}")


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    print(f"\nhostile examples tried per engine: {dict(TRIED)}")


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def test_hostile_names_and_values(engine: Engine, connection: Connection) -> None:
    """Hostile keys, schema names, values and ids: executed, read back exactly, nothing else."""
    _run(engine, connection, EXAMPLES[engine.name])


@pytest.mark.soak
def test_hostile_names_and_values_soak(engine: Engine, connection: Connection) -> None:
    """The same with many more examples (``pytest -m soak``)."""
    _run(engine, connection, EXAMPLES[engine.name] * SOAK_FACTOR)


def test_ids_that_differ_only_by_case_space_or_form(engine: Engine, connection: Connection) -> None:
    """Every message id and user id of :data:`MESSAGE_IDS` / :data:`USER_IDS` is its own row,
    on one instant, so ties are decided by message id in code-point order."""
    caps = capabilities(engine.dialect)
    space = Space(
        traits=[ComputedTrait("plan", TraitType.STRING)],
        audiences=[Audience("vip")],
        schema="pw_ids_" + secrets.token_hex(4),
    )
    events = [
        IdentifyEvent(m, USER_IDS[i % len(USER_IDS)], T0, {"plan": m, "vip": i % 2 == 0})
        for i, m in enumerate(MESSAGE_IDS)
    ]
    events += [IdentifyEvent(f"same-user{m}", "tie", T0, {"plan": m}) for m in MESSAGE_IDS]
    check_example(connection, engine, caps, space, events)
    kept = accepted(caps, space, events)
    winner = max(e.message_id for e in kept if e.user_id == "tie")  # code-point order
    assert (
        IdentifiesLog(space, kept).snapshot(T0)["tie"].traits["plan"] == winner[len("same-user") :]
    )


def test_one_megabyte_string(engine: Engine, connection: Connection) -> None:
    """A 1 MB string of every hostile fragment round-trips through identifies and users."""
    caps = capabilities(engine.dialect)
    space = Space(
        traits=[ComputedTrait("blob", TraitType.STRING)],
        schema="pw_big_" + secrets.token_hex(4),
    )
    unit = "".join(HOSTILE_STRINGS) + "".join(FRAGMENTS)
    big = (unit * (1024 * 1024 // len(unit.encode()) + 1)).encode()[: 1024 * 1024]
    value = big.decode(errors="ignore")
    events = [IdentifyEvent("m", "u", T0, {"blob": value})]
    if len(value.encode()) * 2 < caps.max_statement_bytes:
        check_example(connection, engine, caps, space, events)
        return
    # Past the warehouse's statement size: the documented error, then the parameter path
    with pytest.raises(StatementTooLargeError, match="insert_rows"):
        insert_statements(space, events, caps, now=LOAD_TIME)
    if caps.upsert not in {Upsert.ON_CONFLICT, Upsert.ON_DUPLICATE_KEY}:
        pytest.skip(f"{engine.name}: no parameter path; 1 MB is past max_statement_bytes")
    check_example(connection, engine, caps, space, events, load_parameters)


@pytest.mark.parametrize(
    "dialect", ["sqlite", "duckdb", "postgres", "mysql", "spark", "clickhouse"]
)
@given(body=_hostile_text() | st.sampled_from(["x" * 300, "é" * 64, "1lead", "a b"]))
@settings(max_examples=50, deadline=None)
def test_schema_names_refused_with_the_documented_error(dialect: str, body: str) -> None:
    """A schema name the warehouse cannot take is InvalidSpaceError, naming what to change;
    one it can take renders."""
    caps = capabilities(dialect)
    if not body.strip():
        with pytest.raises(InvalidSpaceError, match="schema name"):
            Space(traits=[ComputedTrait("k")], schema=body)
        return
    space = Space(traits=[ComputedTrait("k")], schema=body)
    limit = schema_limit(caps)
    too_long = limit is not None and caps.identifier_length(body) > limit
    word = body.isascii() and body.replace("_", "a").isalnum() and not body[0].isdigit()
    beyond_bmp = any(ord(char) > 0xFFFF for char in body)
    refused = (
        too_long or (caps.word_schema_names and not word) or (caps.bmp_identifiers and beyond_bmp)
    )
    if refused:
        with pytest.raises(InvalidSpaceError, match="schema name"):
            create_statements(space, caps)
    else:
        assert create_statements(space, caps)


NON_BINARY_ID_COLUMN = {
    "postgres": 'ALTER TABLE {table} ALTER COLUMN {column} TYPE TEXT COLLATE "en-x-icu"',
    "mysql": (
        "ALTER TABLE {table} MODIFY {column} VARCHAR(255) CHARACTER SET utf8mb4 "
        "COLLATE utf8mb4_general_ci NOT NULL"
    ),
}
"""How to give an id column a linguistic collation (``a`` < ``B``), on engines that have one."""


def test_ties_order_by_code_point_under_a_linguistic_collation(
    engine: Engine, connection: Connection
) -> None:
    """Id columns with a linguistic collation (a database created with en_US, say) still break
    ties by code point (``B`` < ``a``): ``binary_text`` overrides the column's collation."""
    if engine.name not in NON_BINARY_ID_COLUMN:
        pytest.skip(f"{engine.name} compares text by bytes only")
    caps = capabilities(engine.dialect)
    space = Space(
        traits=[ComputedTrait("plan", TraitType.STRING)],
        schema="pw_coll_" + secrets.token_hex(4),
    )
    events = [
        IdentifyEvent("B", "u", T0, {"plan": "from B"}),
        IdentifyEvent("a", "u", T0, {"plan": "from a"}),  # a > B by code point: a wins
        IdentifyEvent("c", "B", T0, {"plan": "copy of B"}),
        IdentifyEvent("c", "a", T0, {"plan": "copy of a"}),  # user B < a: B's copy is kept
    ]
    expected = IdentifiesLog(space, events).snapshot(T0)
    assert expected["u"].traits["plan"] == "from a"
    assert set(expected) == {"u", "B"}
    try:
        run_ddl(connection, caps, space)
        for column in ("id", "user_id"):
            connection.execute(
                NON_BINARY_ID_COLUMN[engine.name].format(
                    table=connection.qualified(space.schema, "identifies"),
                    column=connection.quote(column),
                )
            )
        plain = type(
            "Linguistic", (type(caps),), {"binary_collation": None, "binary_text_type": None}
        )()
        load(connection, space, caps, events[:2], LOAD_TIME)
        # the column's own order: B wins the tie, which is not what Python decides
        assert query_states(connection, space, plain, T0)["u"].traits["plan"] == "from B"
        # the copy from user "a" arrives in a later load: the upsert's own comparison (not
        # Python's dedupe) must keep the copy from "B" (B < a by code point)
        load(connection, space, caps, events[2:3], LOAD_TIME)
        load(connection, space, caps, events[3:], LOAD_TIME)
        assert query_states(connection, space, caps, T0) == expected
        assert_users_match(connection, space, caps, events)
    finally:
        drop_schema(connection, engine, caps, space.schema)
