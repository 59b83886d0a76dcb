"""DDL without an engine: what is created, what a migration does, and every refusal."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import sqlglot
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sqlglot import exp
from test_ddl_golden import assert_parses_back

import personas_warehouse as pw
from personas_warehouse import strategies
from personas_warehouse.model import Audience, ComputedTrait, Space, TraitType, portable_stem
from personas_warehouse.sql.ddl import (
    WIDENINGS,
    check_column_limit,
    create_statements,
    drop_column_statements,
    migrate_statements,
    migration_steps,
    synced_tables,
    widening_check_queries,
)
from personas_warehouse.sql.tables import identifies_columns, users_columns
from personas_warehouse.warehouses import WAREHOUSES, AlterType, capabilities

T = TraitType
ALL = [*sorted(WAREHOUSES), "oracle"]


def trees(statements: list[str], dialect: str) -> list[exp.Expression]:
    return [
        sqlglot.parse_one(sql, read=capabilities(dialect).sqlglot_dialect) for sql in statements
    ]


def space(*traits: tuple[str, TraitType], audiences: tuple[str, ...] = (), **kw: object) -> Space:
    return Space(
        traits=[ComputedTrait(key, type_) for key, type_ in traits],
        audiences=[Audience(a) for a in audiences],
        **kw,  # type: ignore[arg-type]
    )


# -- create ----------------------------------------------------------------------------------


# T-SQL's guarded CREATE is not read back by sqlglot (see test_ddl_golden.py).
@pytest.mark.parametrize("dialect", [d for d in ALL if d != "tsql"])
def test_create_makes_schema_and_tables(dialect: str) -> None:
    caps = capabilities(dialect)
    s = space(("ltv", T.NUMBER), audiences=("vip",))
    statements = create_statements(s, dialect)
    assert len(statements) == 3 + caps.schemas
    creates = trees(statements, dialect)
    assert all(isinstance(t, exp.Create) and t.args.get("exists") for t in creates)
    if caps.schemas:
        assert creates[0].kind in {"SCHEMA", "DATABASE"}
        assert "personas_default" in {creates[0].this.db, creates[0].this.name}
    tables = [t.this.this for t in creates[caps.schemas :]]
    assert [t.name for t in tables] == ["identifies", "users", "sync_runs"]
    assert {t.db for t in tables} == {"personas_default"}


def test_no_schema_statement_on_sqlite() -> None:
    statements = create_statements(space(("a", T.STRING)), "sqlite")
    assert not any("SCHEMA" in sql for sql in statements)
    assert all(
        sql.startswith('CREATE TABLE IF NOT EXISTS "personas_default".') for sql in statements
    )


@pytest.mark.parametrize(
    ("kw", "tables"),
    [
        ({}, ["identifies", "users", "sync_runs"]),
        ({"sync_identifies": False}, ["users", "sync_runs"]),
        ({"sync_users": False}, ["identifies", "sync_runs"]),
    ],
)
def test_selective_sync_of_tables(kw: dict[str, bool], tables: list[str]) -> None:
    s = space(("a", T.STRING), **kw)
    assert list(synced_tables(s, "postgres")) == tables
    statements = create_statements(s, "postgres")
    for name in ["identifies", "users"]:
        assert any(f'"{name}"' in sql for sql in statements) == (name in tables)


def test_excluded_keys_get_no_column() -> None:
    s = space(("kept", T.STRING), ("secret", T.STRING), audiences=("vip",), excluded={"secret"})
    sql = " ".join(create_statements(s, "duckdb"))
    assert '"kept"' in sql
    assert '"vip"' in sql
    assert "secret" not in sql


def test_every_identifier_is_quoted() -> None:
    s = space(("select", T.INTEGER), ("order", T.STRING), audiences=("from",))
    for sql in create_statements(s, "postgres"):
        for word in ["select", "order", "from", "timestamp"]:
            assert f" {word} " not in sql.lower().replace(f'"{word}"', "")


def test_clickhouse_engine_and_nullability() -> None:
    s = space(("ltv", T.NUMBER), audiences=("vip",))
    for sql in create_statements(s, "clickhouse")[1:]:
        assert 'ENGINE=ReplacingMergeTree("version")' in sql
    users = create_statements(s, "clickhouse")[2]
    assert '"ltv" Nullable(Float64)' in users
    assert '"vip" Nullable(Bool)' in users
    assert '"id" String NOT NULL' in users
    assert '"version" UInt64 NOT NULL' in users
    assert users.endswith('ORDER BY "id"')


def test_bigquery_keys_are_not_enforced_and_mysql_ids_indexable() -> None:
    assert all(
        "PRIMARY KEY (`id`) NOT ENFORCED" in sql
        for sql in create_statements(space(sync_identifies=False), "bigquery")[1:2]
    )
    users = create_statements(space(sync_identifies=False), "mysql")[1]
    assert "`id` VARCHAR(255) NOT NULL" in users
    assert "PRIMARY KEY (`id`)" in users


@pytest.mark.parametrize(
    ("dialect", "types"),
    [
        ("postgres", ["TIMESTAMPTZ", "JSONB", "BIGINT", "DOUBLE PRECISION"]),
        ("snowflake", ["TIMESTAMPTZ", "VARIANT", "DECIMAL(19, 0)", "DOUBLE"]),
        ("redshift", ["TIMESTAMP WITH TIME ZONE", "SUPER", "BIGINT", "VARCHAR(65535)"]),
        ("bigquery", ["TIMESTAMP", "JSON", "INT64", "FLOAT64"]),
        ("tsql", ["DATETIMEOFFSET(6)", "NVARCHAR(MAX)", "BIGINT", "FLOAT"]),
        ("clickhouse", ["DateTime64(6, 'UTC')", "Nullable(String)", "Nullable(Int64)"]),
        ("mysql", ["DATETIME(6)", "JSON", "BIGINT", "DOUBLE", "LONGTEXT"]),
    ],
)
def test_lossless_types(dialect: str, types: list[str]) -> None:
    s = space(*[(t.value, t) for t in T])
    sql = " ".join(create_statements(s, dialect))
    for type_ in types:
        assert type_ in sql, type_
    assert "VARCHAR(256)" not in sql
    if dialect == "tsql":
        assert "NVARCHAR " not in sql  # never a bare NVARCHAR
        assert "NVARCHAR," not in sql


def test_awkward_schema_names() -> None:
    odd = 'it\'s "odd" `schema` ]x['
    for dialect in ["postgres", "duckdb", "mysql", "clickhouse", "snowflake", "redshift"]:
        statements = create_statements(space(("a", T.STRING), schema=odd), dialect)
        first = sqlglot.parse_one(statements[0], read=dialect)
        assert (first.this.db or first.this.name) == odd
    for dialect in ["spark", "databricks", "bigquery", "tsql"]:
        with pytest.raises(pw.InvalidSpaceError, match="ASCII letters"):
            create_statements(space(schema="my schema"), dialect)
        assert create_statements(space(schema="My_Schema_2"), dialect)
    with pytest.raises(pw.InvalidSpaceError, match="is 64 bytes long; postgres allows 63"):
        create_statements(space(schema="é" * 32), "postgres")


# -- errors ----------------------------------------------------------------------------------


def test_column_limit_checked_before_any_sql() -> None:
    wide = Space(audiences=[Audience(f"a{i}") for i in range(1600)])
    with pytest.raises(pw.ColumnLimitError) as caught:
        create_statements(wide, "mysql")
    message = str(caught.value)
    assert "1606 columns" in message
    assert "1017" in message
    assert "exclude" in message
    # the users table alone counts too
    with pytest.raises(pw.ColumnLimitError, match="users table would have 1604"):
        check_column_limit(Space(audiences=wide.audiences, sync_identifies=False), "mysql")
    fits = Space(audiences=wide.audiences[:1000])
    assert check_column_limit(fits, "mysql") is None
    with pytest.raises(pw.ColumnLimitError):
        migrate_statements(fits, wide, "postgres")  # 1606 > 1600
    assert create_statements(wide, "duckdb")  # no limit there


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (T.NUMBER, T.INTEGER),
        (T.STRING, T.INTEGER),
        (T.STRING, T.BOOLEAN),
        (T.STRING, T.TIMESTAMP),
        (T.STRING, T.JSON),
        (T.JSON, T.STRING),
        (T.BOOLEAN, T.INTEGER),
        (T.TIMESTAMP, T.INTEGER),
    ],
)
def test_narrowing_is_refused(before: TraitType, after: TraitType) -> None:
    with pytest.raises(pw.MigrationError) as caught:
        migrate_statements(space(("k", before)), space(("k", after)), "postgres")
    message = str(caught.value)
    assert f"from {before.name} to {after.name}" in message
    assert "new trait key" in message


def test_every_widening_is_accepted_everywhere() -> None:
    assert len(WIDENINGS) == 5
    for dialect in ALL:
        caps = capabilities(dialect)
        for before, after in WIDENINGS:
            statements = migrate_statements(space(("k", before)), space(("k", after)), dialect)
            same = caps.column_types[before] == caps.column_types[after]  # SQLite's TEXT
            assert bool(statements) != same, (dialect, before, after)


def test_removal_needs_an_explicit_opt_in() -> None:
    old = space(("a", T.STRING), ("b", T.STRING), audiences=("vip",))
    new = space(("a", T.STRING))
    with pytest.raises(pw.MigrationError) as caught:
        migrate_statements(old, new, "postgres")
    assert "['b', 'vip']" in str(caught.value)
    assert "drop_removed=True" in str(caught.value)
    dropped = migrate_statements(old, new, "postgres", drop_removed=True)
    assert dropped == [
        'ALTER TABLE "personas_default"."identifies" DROP COLUMN "b"',
        'ALTER TABLE "personas_default"."identifies" DROP COLUMN "vip"',
        'ALTER TABLE "personas_default"."users" DROP COLUMN "b"',
        'ALTER TABLE "personas_default"."users" DROP COLUMN "vip"',
    ]
    assert drop_column_statements(old, ["b", "vip"], "postgres") == dropped
    with pytest.raises(pw.MigrationError, match="not synced keys"):
        drop_column_statements(old, ["nope"], "postgres")


def test_excluding_a_key_is_a_removal() -> None:
    old = space(("a", T.STRING), ("b", T.STRING))
    with pytest.raises(pw.MigrationError, match="'b'"):
        migrate_statements(old, space(("a", T.STRING), ("b", T.STRING), excluded={"b"}), "duckdb")


def test_kind_change_and_schema_rename_are_refused() -> None:
    with pytest.raises(pw.MigrationError, match="cannot change kind"):
        migrate_statements(space(("k", T.BOOLEAN)), space(audiences=("k",)), "duckdb")
    with pytest.raises(pw.MigrationError, match="schema cannot be renamed"):
        migrate_statements(space(schema="a"), space(schema="b"), "duckdb")


@pytest.mark.parametrize("bad", ["", "nosuch", "postgresqlx"])
def test_unknown_dialect(bad: str) -> None:
    with pytest.raises(pw.UnknownDialectError, match="known dialects"):
        create_statements(space(), bad)
    with pytest.raises(pw.UnknownDialectError):
        migrate_statements(space(), space(), bad)


def test_every_error_is_a_library_error() -> None:
    for error in [pw.ColumnLimitError, pw.MigrationError, pw.UnknownDialectError]:
        assert issubclass(error, pw.PersonasWarehouseError)


# -- migrations ------------------------------------------------------------------------------


def test_nothing_to_do() -> None:
    s = space(("a", T.STRING), audiences=("vip",))
    assert migrate_statements(s, s, "snowflake") == []


@pytest.mark.parametrize("dialect", ALL)
def test_new_keys_add_columns_to_both_tables(dialect: str) -> None:
    caps = capabilities(dialect)
    old = space(("a", T.STRING))
    new = space(("a", T.STRING), ("b", T.INTEGER), ("c", T.JSON), audiences=("vip",))
    statements = migrate_statements(old, new, dialect)
    alters = [t for t in trees(statements, dialect) if isinstance(t, exp.Alter)]
    added: dict[str, list[str]] = {}
    for alter in alters:
        columns = [a for a in alter.args["actions"] if isinstance(a, exp.ColumnDef)]
        if caps.columns_per_add_column == 1:
            assert len(columns) == 1
        added.setdefault(alter.this.name, []).extend(c.name for c in columns)
        assert all(bool(c.args.get("exists")) == caps.add_column_if_not_exists for c in columns)
    assert added == {"identifies": ["b", "c", "vip"], "users": ["b", "c", "vip"]}


def test_newly_synced_table_is_created() -> None:
    old = space(("a", T.STRING), sync_users=False)
    new = space(("a", T.STRING), ("b", T.STRING))
    steps = migration_steps(old, new, "postgres")
    assert [s.description for s in steps] == ["add 1 column(s) to identifies", "create users"]
    assert (
        steps[1].statements[0].startswith('CREATE TABLE IF NOT EXISTS "personas_default"."users"')
    )


@pytest.mark.parametrize(
    ("dialect", "strategy"),
    [
        ("postgres", "ALTER COLUMN"),
        ("duckdb", "ALTER COLUMN"),
        ("mysql", "MODIFY COLUMN"),
        ("clickhouse", "ALTER COLUMN"),
        ("bigquery", "SET DATA TYPE"),
        ("tsql", "ALTER COLUMN"),
        ("redshift", "RENAME COLUMN"),
        ("snowflake", "RENAME COLUMN"),
        ("trino", "RENAME COLUMN"),
        ("sqlite", "__pw_rebuild"),
        ("spark", "__pw_rebuild"),
        ("databricks", "__pw_rebuild"),
    ],
)
def test_integer_to_number_by_the_warehouse_own_means(dialect: str, strategy: str) -> None:
    statements = migrate_statements(space(("k", T.INTEGER)), space(("k", T.NUMBER)), dialect)
    assert any(strategy in sql for sql in statements), statements


def test_redshift_copy_rename_is_one_transaction() -> None:
    statements = migrate_statements(space(("k", T.BOOLEAN)), space(("k", T.STRING)), "redshift")
    users = statements[len(statements) // 2 :]
    assert users[0] == "BEGIN"
    assert users[-1] == "COMMIT"
    assert [sql.split()[0] for sql in users[1:-1]] == ["ALTER", "UPDATE", "ALTER", "ALTER"]
    assert "CASE WHEN" in users[2]
    assert not any("ALTER COLUMN" in sql for sql in statements)


def test_non_transactional_warehouses_get_no_begin() -> None:
    for dialect in ["bigquery", "snowflake", "trino", "spark", "clickhouse", "mysql"]:
        caps = capabilities(dialect)
        statements = migrate_statements(space(("k", T.BOOLEAN)), space(("k", T.STRING)), dialect)
        assert not any(sql.startswith(("BEGIN", "START")) for sql in statements), dialect
        assert not (caps.transactions and caps.transactional_ddl)


def test_timestamp_text_everywhere_is_utc_iso() -> None:
    s1, s2 = space(("t", T.TIMESTAMP)), space(("t", T.STRING))
    assert "AT TIME ZONE 'UTC'" in " ".join(migrate_statements(s1, s2, "postgres"))
    assert "FORMAT_TIMESTAMP(" in " ".join(migrate_statements(s1, s2, "bigquery"))
    assert "CONVERT_TIMEZONE('UTC'" in " ".join(migrate_statements(s1, s2, "snowflake"))
    assert "'+00:00'" in " ".join(migrate_statements(s1, s2, "clickhouse"))
    assert migrate_statements(s1, s2, "sqlite") == []  # already ISO-8601 UTC text


def test_rebuild_keeps_column_order_and_adds_last() -> None:
    old = space(("a", T.INTEGER), ("b", T.STRING), sync_identifies=False)
    new = space(("a", T.NUMBER), ("b", T.STRING), ("c", T.BOOLEAN), sync_identifies=False)
    (step, *_rest) = migration_steps(old, new, "spark")
    assert step.atomic
    create = [
        sql
        for sql in step.statements
        if sql.startswith("CREATE TABLE IF NOT EXISTS `personas_default`.`users` ")
    ]
    tree = sqlglot.parse_one(create[0], read="spark")
    names = [c.name for c in tree.this.expressions]
    expected = [c.name for c in users_columns(old, "spark")] + ["c"]
    assert names == expected
    assert identifies_columns(old, "spark")  # unchanged layout helpers


def test_strategy_flags_are_consistent() -> None:
    for dialect in WAREHOUSES:
        caps = capabilities(dialect)
        assert caps.alter_type_fallback in {AlterType.COPY_RENAME, AlterType.REBUILD_TABLE}
        assert caps.in_place_widenings <= WIDENINGS
        if caps.alter_type_using:
            assert caps.alter_type is AlterType.ALTER_COLUMN_TYPE


def test_widening_check_queries() -> None:
    old = space(("n", T.INTEGER), ("b", T.BOOLEAN))
    new = space(("n", T.NUMBER), ("b", T.STRING))
    queries = widening_check_queries(old, new, "postgres")
    assert queries == [
        'SELECT COUNT(*) FROM "personas_default"."identifies" WHERE '
        '"n" > 9007199254740992 OR "n" < -9007199254740992',
        'SELECT COUNT(*) FROM "personas_default"."users" WHERE '
        '"n" > 9007199254740992 OR "n" < -9007199254740992',
    ]
    assert widening_check_queries(old, space(("n", T.STRING), ("b", T.STRING)), "postgres") == []


# -- docs/warehouses.md ------------------------------------------------------------------------


def capability_tables() -> str:
    """The generated part of docs/warehouses.md, from the capability classes."""
    rows = [
        "| warehouse | verified by | BOOLEAN | INTEGER | NUMBER | STRING | TIMESTAMP | JSON "
        "| audience | ids | system time |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in WAREHOUSES:
        caps = capabilities(name)
        types = [caps.column_types[t] for t in T]
        how = "execution" if caps.verified_by_execution else "golden SQL"
        cells = [f"`{name}`", how, *[f"`{t}`" for t in types]]
        cells += [f"`{caps.boolean_type}`", f"`{caps.key_string_type}`"]
        cells += [f"`{caps.timestamp_type}`"]
        rows.append("| " + " | ".join(cells) + " |")
    rows += [
        "",
        "| warehouse | identifier limit | columns per table | upsert | primary key | ADD COLUMN "
        "| IF NOT EXISTS | widening | fallback | DDL in transactions |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in WAREHOUSES:
        caps = capabilities(name)
        limit = caps.identifier_limit
        cells = [
            f"`{name}`",
            "none" if limit is None else f"{limit} {caps.identifier_unit.value}",
            "none" if caps.max_columns is None else str(caps.max_columns),
            caps.upsert.value,
            caps.primary_key.value,
            "one column" if caps.columns_per_add_column == 1 else "many columns",
            "yes" if caps.add_column_if_not_exists else "no",
            caps.alter_type.value + (" + USING" if caps.alter_type_using else ""),
            caps.alter_type_fallback.value,
            "yes" if caps.transactional_ddl and caps.transactions else "no",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def test_docs_page_matches_the_capabilities() -> None:
    page = (Path(__file__).parent.parent / "docs" / "warehouses.md").read_text()
    begin, end = (
        "<!-- BEGIN GENERATED: capabilities -->\n",
        "\n<!-- END GENERATED: capabilities -->",
    )
    generated = page.split(begin, 1)[1].split(end, 1)[0]
    assert generated == capability_tables()
    for name in WAREHOUSES:
        assert f"`{name}`" in page


# -- properties ------------------------------------------------------------------------------

_WIDER = {before: [after for b, after in WIDENINGS if b is before] for before in T}


@st.composite
def evolutions(draw: st.DrawFn) -> tuple[Space, Space]:
    """A space, and the same space with some traits widened and some keys added."""
    old = draw(strategies.spaces(max_keys=5))
    traits = []
    for trait in old.traits:
        choices = _WIDER[trait.type]
        if choices and draw(st.booleans()):
            traits.append(ComputedTrait(trait.key, draw(st.sampled_from(choices))))
        else:
            traits.append(trait)
    extra = draw(strategies.spaces(max_keys=3))
    taken = {portable_stem(k) for k in old.keys}
    traits += [t for t in extra.traits if portable_stem(t.key) not in taken]
    audiences = [*old.audiences]
    audiences += [a for a in extra.audiences if portable_stem(a.key) not in taken]
    try:
        new = Space(traits=traits, audiences=audiences)
    except pw.InvalidSpaceError:
        assume(False)
        raise
    return old, new


@settings(max_examples=20)  # 13 dialects x ~40 statements each: ~0.3 s an example
@given(evolutions())
def test_every_dialect_writes_sql_it_reads_back(evolution: tuple[Space, Space]) -> None:
    """For any space and any safe evolution, every statement parses back unchanged."""
    old, new = evolution
    for dialect in [*WAREHOUSES, "oracle"]:
        for sql in create_statements(old, dialect) + migrate_statements(old, new, dialect):
            assert_parses_back(sql, dialect)


@settings(max_examples=40)
@given(evolutions())
def test_duckdb_catalog_follows_any_evolution(evolution: tuple[Space, Space]) -> None:
    """On DuckDB, create + migrate leave exactly the columns and types of the new space."""
    old, new = evolution
    conn = duckdb.connect(":memory:")
    try:
        for sql in create_statements(old, "duckdb") + migrate_statements(old, new, "duckdb"):
            conn.execute(sql)
        for name, columns in synced_tables(new, "duckdb").items():
            got = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ?",
                [new.schema, name],
            ).fetchall()
            want = {
                c.name: exp.DataType.build(c.type, dialect="duckdb").sql("duckdb") for c in columns
            }
            reported = {
                column: exp.DataType.build(type_, dialect="duckdb").sql("duckdb")
                for column, type_ in got
            }
            assert reported == want
    finally:
        conn.close()


@pytest.mark.soak
@settings(max_examples=2_000)
@given(evolutions())
def test_every_dialect_writes_sql_it_reads_back_soak(evolution: tuple[Space, Space]) -> None:
    """The parse-back property with many more examples (``pytest -m soak``)."""
    test_every_dialect_writes_sql_it_reads_back.hypothesis.inner_test(evolution)  # type: ignore[attr-defined]
