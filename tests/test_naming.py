"""Key -> column naming: Segment's snake_case, per-warehouse limits, renames, collisions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import personas_warehouse as pw
from personas_warehouse import naming
from personas_warehouse.model import segment_snake_case
from personas_warehouse.naming import (
    LITERAL_NAMES,
    RESERVED_COLUMNS,
    IdentifierRules,
    IdentifierUnit,
    check_identifier,
    key_hash,
)
from personas_warehouse.warehouses import WAREHOUSES, capabilities

ALL_DIALECTS = [*WAREHOUSES, "oracle", "presto"]


# go-snakecase's own test table, plus the examples.
@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("sample text", "sample_text"),
        ("sample-text", "sample_text"),
        ("sample_text", "sample_text"),
        ("sample___text", "sample_text"),
        ("sampleText", "sample_text"),
        ("inviteYourCustomersAddInvites", "invite_your_customers_add_invites"),
        ("sample 2 Text", "sample_2_text"),
        ("   sample   2    Text   ", "sample_2_text"),
        ("   $#$sample   2    Text   ", "sample_2_text"),
        ("SAMPLE 2 TEXT", "sample_2_text"),
        ("___$$Base64Encode", "base64_encode"),
        ("FOO:BAR$BAZ", "foo_bar_baz"),
        ("FOO#BAR#BAZ", "foo_bar_baz"),
        ("something.com", "something_com"),
        ("$something%", "something"),
        ("•¶§ƒ˚foo˙∆˚¬", "foo"),
        ("orderID", "order_id"),
        ("CStringRef", "cstring_ref"),
        ("2FA Enabled", "2fa_enabled"),
        ("version2Name", "version_2name"),  # a digit before a capital joins its word
        ("café au lait", "caf_au_lait"),
        ("a_", "a"),
        ("日本語", ""),
    ],
)
def test_segment_snake_case(key: str, expected: str) -> None:
    assert segment_snake_case(key) == expected


# One table of examples per warehouse: key -> expected column.
LONG = "very long trait name " * 20  # 420 characters
EXPECTED: dict[str, dict[str, str]] = {
    "orderID": dict.fromkeys(ALL_DIALECTS, "order_id"),
    "id": dict.fromkeys(ALL_DIALECTS, "id_"),
    "Received At": dict.fromkeys(ALL_DIALECTS, "received_at_"),
    "2FA Enabled": {d: "_2fa_enabled" if d == "bigquery" else "2fa_enabled" for d in ALL_DIALECTS},
    "select": dict.fromkeys(ALL_DIALECTS, "select"),
    "True": dict.fromkeys(ALL_DIALECTS, "true_"),
    "false": dict.fromkeys(ALL_DIALECTS, "false_"),
    "🎉": dict.fromkeys(ALL_DIALECTS, f"key__{key_hash('🎉')}"),
}


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
@pytest.mark.parametrize("key", list(EXPECTED))
def test_column_name_table(key: str, dialect: str) -> None:
    assert pw.column_name(key, dialect) == EXPECTED[key][dialect]


@pytest.mark.parametrize(
    ("dialect", "limit"),
    [
        ("postgres", 63),
        ("redshift", 127),
        ("bigquery", 300),
        ("snowflake", 255),
        ("databricks", 255),
        ("mysql", 64),
        ("tsql", 128),
        ("oracle", 63),  # the conservative profile
    ],
)
def test_long_keys_are_shortened_with_a_hash(dialect: str, limit: int) -> None:
    column = pw.column_name(LONG, dialect)
    assert len(column.encode()) <= limit
    assert column.endswith("__" + key_hash(LONG))
    assert column.startswith("very_long_trait_name_very")
    assert pw.column_name(LONG + "x", dialect) != column  # never plain truncation


@pytest.mark.parametrize("dialect", ["clickhouse", "duckdb", "sqlite"])
def test_no_limit_warehouses_keep_long_names(dialect: str) -> None:
    assert pw.column_name(LONG, dialect) == segment_snake_case(LONG)


def test_name_at_the_limit_is_kept_and_one_past_is_shortened() -> None:
    at_limit = "a" * 63
    assert pw.column_name(at_limit, "postgres") == at_limit
    assert pw.column_name(at_limit + "b", "postgres").endswith(key_hash(at_limit + "b"))


def test_unknown_dialect_lists_the_known_ones() -> None:
    with pytest.raises(pw.UnknownDialectError, match=r"unknown dialect 'nosuchdb'.*duckdb.*tsql"):
        pw.column_name("a", "nosuchdb")


def test_column_names_of_a_space_follow_key_order_and_skip_excluded() -> None:
    space = pw.Space(
        traits=[pw.ComputedTrait("LTV"), pw.ComputedTrait("skip")],
        audiences=[pw.Audience("id")],
        excluded={"skip"},
    )
    assert dict(pw.column_names(space, "postgres")) == {"LTV": "ltv", "id": "id_"}


def test_check_identifier() -> None:
    postgres, mysql = capabilities("postgres"), capabilities("mysql")
    assert check_identifier("personas_default", postgres) == "personas_default"
    with pytest.raises(pw.InvalidSpaceError, match="64 bytes long; postgres allows 63"):
        check_identifier("é" * 32, postgres, "schema name")
    assert check_identifier("é" * 32, mysql) == "é" * 32  # 32 characters


def test_naming_takes_any_rules() -> None:
    rules = IdentifierRules(identifier_limit=20, identifier_unit=IdentifierUnit.BYTES)
    assert naming.column_name("short", rules) == "short"
    key = "a much longer key name"
    assert naming.column_name(key, rules) == f"a_much_l__{key_hash(key)}"
    with pytest.raises(pw.InvalidSpaceError, match="at least 16"):
        IdentifierRules(identifier_limit=15)


def test_reserved_columns_cover_the_tables_own_columns() -> None:
    from personas_warehouse.sql.tables import identifies_columns, sync_runs_columns, users_columns

    empty = pw.Space(audiences=[pw.Audience("a")])
    for dialect in ALL_DIALECTS:
        own = [c.name for c in identifies_columns(empty, dialect) + users_columns(empty, dialect)]
        own += [c.name for c in sync_runs_columns(dialect)]
        assert {
            n
            for n in own
            if n != "a"
            and n
            not in {"run_id", "at", "started_at", "finished_at", "status", "rows_written", "counts"}
        } <= RESERVED_COLUMNS


# --- properties -------------------------------------------------------------------------------

keys = st.text(min_size=1, max_size=400).filter(lambda k: k.strip() and "\x00" not in k)


@given(key=keys, dialect=st.sampled_from(ALL_DIALECTS))
def test_column_name_is_deterministic_and_within_the_limit(key: str, dialect: str) -> None:
    caps = capabilities(dialect)
    column = pw.column_name(key, dialect)
    assert column == pw.column_name(key, dialect)
    assert column
    if caps.identifier_limit is not None:
        assert caps.identifier_length(column) <= caps.identifier_limit
    assert column not in RESERVED_COLUMNS
    assert column not in LITERAL_NAMES
    assert column.isascii()
    if caps.identifier_must_start_with_letter:
        assert column[0].isalpha() or column[0] == "_"


@given(candidates=st.lists(keys, min_size=1, max_size=12, unique=True))
def test_column_name_is_injective_over_any_accepted_space(candidates: list[str]) -> None:
    try:
        space = pw.Space(audiences=[pw.Audience(k) for k in candidates])
    except pw.ColumnCollisionError:
        return
    for dialect in ALL_DIALECTS:
        columns = pw.column_names(space, dialect)
        assert len({c.casefold() for c in columns.values()}) == len(candidates)
