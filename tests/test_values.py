"""The value layer: literals per dialect, refusals, and decoding what drivers return."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import sqlite3

import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp

from personas_warehouse.errors import InvalidEventError, UnsupportedValueError
from personas_warehouse.model import TraitType
from personas_warehouse.sql.render import render
from personas_warehouse.sql.values import (
    decode_timestamp,
    decode_value,
    json_text,
    literal,
    null_literal,
    parameter_value,
    timestamp_literal,
    timestamp_text,
)

DIALECTS = [
    "snowflake",
    "bigquery",
    "redshift",
    "databricks",
    "postgres",
    "tsql",
    "spark",
    "trino",
    "clickhouse",
    "mysql",
    "duckdb",
    "sqlite",
]
BACKSLASH_DIALECTS = ["mysql", "spark", "bigquery", "clickhouse", "databricks", "snowflake"]
AWKWARD = ["it's", "a\\b", "a\\'b", "line\nbreak", "tab\there", "é 日本 😀", "\\", "'", "''", ""]
PLUS2 = dt.timezone(dt.timedelta(hours=2))
MOMENT = dt.datetime(2024, 5, 1, 12, 30, 0, 5, tzinfo=PLUS2)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("text", AWKWARD)
def test_strings_parse_back_exactly(dialect: str, text: str) -> None:
    sql = render(exp.select(literal(dialect, TraitType.STRING, text)), dialect)
    parsed = sqlglot.parse_one(sql, read=dialect)
    assert parsed.expressions[0].this == text, sql


@pytest.mark.parametrize("dialect", BACKSLASH_DIALECTS)
def test_backslashes_are_escaped_where_they_escape(dialect: str) -> None:
    assert render(literal(dialect, TraitType.STRING, "a\\b"), dialect) == "'a\\\\b'"


def test_backslash_is_plain_where_it_is_plain() -> None:
    assert render(literal("postgres", TraitType.STRING, "a\\b"), "postgres") == "'a\\b'"
    assert render(literal("sqlite", TraitType.STRING, "a\\b"), "sqlite") == "'a\\b'"


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00")))
@settings(max_examples=200)
def test_strings_round_trip_on_sqlite_and_duckdb(text: str) -> None:
    import duckdb

    sql = render(exp.select(literal("sqlite", TraitType.STRING, text)), "sqlite")
    assert sqlite3.connect(":memory:").execute(sql).fetchone() == (text,)
    sql = render(exp.select(literal("duckdb", TraitType.STRING, text)), "duckdb")
    assert duckdb.sql(sql).fetchall()[0] == (text,)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_nul_nan_and_infinity_are_refused(dialect: str) -> None:
    with pytest.raises(UnsupportedValueError, match="NUL"):
        literal(dialect, TraitType.STRING, "a\x00b")
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(UnsupportedValueError, match="NaN or infinity"):
            literal(dialect, TraitType.NUMBER, bad)
    with pytest.raises(UnsupportedValueError):
        literal(dialect, TraitType.JSON, {"a": math.nan})
    with pytest.raises(UnsupportedValueError, match="NUL"):
        literal(dialect, TraitType.JSON, ["\x00"])


@pytest.mark.parametrize("dialect", DIALECTS)
def test_values_never_render_as_null_or_identifiers(dialect: str) -> None:
    samples = {
        TraitType.BOOLEAN: [True, False],
        TraitType.INTEGER: [0, -1, 2**63 - 1, -(2**63)],
        TraitType.NUMBER: [0.0, -0.0, 0.1, 1e300, 5e-324, 3],
        TraitType.STRING: AWKWARD,
        TraitType.TIMESTAMP: [MOMENT],
        TraitType.JSON: [{"a": 1}, [1, "x"], "s", 1.5, 0, True],
    }
    for trait_type, values in samples.items():
        for value in values:
            tree = literal(dialect, trait_type, value)
            assert not list(tree.find_all(exp.Null)), (trait_type, value)
            assert not list(tree.find_all(exp.Column)), (trait_type, value)
            assert not list(tree.find_all(exp.Map, exp.VarMap)), (trait_type, value)
            render(exp.select(tree), dialect)  # renders without error


def test_wrong_types_are_refused() -> None:
    with pytest.raises(InvalidEventError):
        literal("duckdb", TraitType.INTEGER, True)
    with pytest.raises(InvalidEventError):
        literal("duckdb", TraitType.NUMBER, False)
    with pytest.raises(InvalidEventError):
        literal("duckdb", TraitType.BOOLEAN, 1)
    with pytest.raises(InvalidEventError):
        literal("duckdb", TraitType.STRING, 5)


def test_timestamps_per_warehouse() -> None:
    assert render(literal("sqlite", TraitType.TIMESTAMP, MOMENT), "sqlite") == (
        "'2024-05-01 10:30:00.000005+00:00'"
    )
    assert render(literal("mysql", TraitType.TIMESTAMP, MOMENT), "mysql") == (
        "'2024-05-01 10:30:00.000005'"
    )
    assert render(timestamp_literal("clickhouse", MOMENT), "clickhouse") == (
        "CAST('2024-05-01 10:30:00.000005' AS DateTime64(6, 'UTC'))"
    )
    assert render(timestamp_literal("postgres", MOMENT), "postgres") == (
        "CAST('2024-05-01 10:30:00.000005+00:00' AS TIMESTAMPTZ)"
    )
    assert "CAST" not in render(null_literal("sqlite", TraitType.TIMESTAMP), "sqlite")


def test_timestamp_text_orders_like_time() -> None:
    times = [
        dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC),
        dt.datetime(2024, 1, 1, 1, tzinfo=PLUS2),  # 23:00 the day before
        dt.datetime(999, 1, 1, tzinfo=dt.UTC),
    ]
    assert sorted(times) == sorted(times, key=timestamp_text)
    assert len({len(timestamp_text(t)) for t in times}) == 1


def test_timestamps_round_trip_on_sqlite_without_casts() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.execute(
        f"INSERT INTO t VALUES ({render(literal('sqlite', TraitType.TIMESTAMP, MOMENT), 'sqlite')})"
    )
    (raw,) = conn.execute("SELECT v FROM t").fetchone()
    assert decode_value("sqlite", TraitType.TIMESTAMP, raw) == MOMENT


def test_json_is_parsed_by_the_dialect() -> None:
    doc = {"a": [1, 2.5, None], "b": "x'y\\z"}
    assert render(literal("duckdb", TraitType.JSON, doc), "duckdb").startswith("JSON(")
    assert render(literal("snowflake", TraitType.JSON, doc), "snowflake").startswith("PARSE_JSON(")
    assert render(literal("postgres", TraitType.JSON, doc), "postgres").endswith("AS JSONB)")
    assert render(literal("sqlite", TraitType.JSON, doc), "sqlite").startswith("'{")
    sql = render(exp.select(literal("duckdb", TraitType.JSON, doc)), "duckdb")
    import duckdb

    assert json.loads(duckdb.sql(sql).fetchall()[0][0]) == doc
    assert json_text("é") == '"é"'


def test_numbers_are_exact_on_sqlite() -> None:
    conn = sqlite3.connect(":memory:")
    for value in [
        0.1,
        0.1 + 0.2,
        5e-324,
        2.2250738585072014e-308,
        1.7976931348623157e308,
        6.49290123627266e274,
        -3.108771325031947e-296,
        123.0,
        -0.0,
    ]:
        sql = render(exp.select(literal("sqlite", TraitType.NUMBER, value)), "sqlite")
        assert "CAST" not in sql
        assert conn.execute(sql).fetchone()[0] == value, sql


def test_booleans_on_bit_columns() -> None:
    assert render(literal("tsql", TraitType.BOOLEAN, False), "tsql") == "0"
    assert render(literal("postgres", TraitType.BOOLEAN, False), "postgres") == "FALSE"


def test_decode_values() -> None:
    assert decode_value("mysql", TraitType.BOOLEAN, 0) is False
    assert decode_value("sqlite", None, 1) is True
    assert decode_value("postgres", None, None) is None
    assert decode_value("mysql", TraitType.INTEGER, decimal.Decimal("12")) == 12
    assert decode_value("mysql", TraitType.NUMBER, decimal.Decimal("1.5")) == 1.5
    assert decode_value("duckdb", TraitType.JSON, '"text"') == "text"
    assert decode_value("postgres", TraitType.JSON, {"a": 1}) == {"a": 1}
    # Postgres JSONB prints the double 1e308 as a 309-digit integer
    assert decode_value("postgres", TraitType.JSON, "[1" + "0" * 308 + "]") == [1e308]
    assert decode_value("spark", TraitType.STRING, b"\xc3\xa9") == "é"
    naive = dt.datetime(2024, 5, 1, 10, 30)
    assert decode_timestamp("mysql", naive) == naive.replace(tzinfo=dt.UTC)
    assert decode_timestamp("duckdb", MOMENT) == MOMENT
    assert decode_timestamp("duckdb", MOMENT).tzinfo is dt.UTC  # type: ignore[union-attr]
    with pytest.raises(InvalidEventError):
        decode_value("mysql", TraitType.BOOLEAN, 7)
    with pytest.raises(InvalidEventError):
        decode_timestamp("sqlite", "not a time")


def test_parameter_values() -> None:
    utc = MOMENT.astimezone(dt.UTC)
    assert parameter_value("sqlite", None, MOMENT) == timestamp_text(MOMENT)
    assert parameter_value("mysql", None, MOMENT) == utc.replace(tzinfo=None)
    assert parameter_value("postgres", None, MOMENT) == utc
    assert parameter_value("clickhouse", None, MOMENT) == utc.replace(tzinfo=None)
    assert parameter_value("duckdb", TraitType.JSON, {"a": 1}) == '{"a": 1}'
    assert parameter_value("tsql", TraitType.BOOLEAN, True) == 1
    assert parameter_value("duckdb", TraitType.NUMBER, 3) == 3.0
