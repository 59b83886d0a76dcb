"""The capabilities registry: twelve warehouses, the conservative profile, documented flags."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from sqlglot import exp

import personas_warehouse as pw
from personas_warehouse.model import TraitType
from personas_warehouse.warehouses import WAREHOUSES, Capabilities, Upsert, capabilities

TWELVE = {
    "snowflake": 255,
    "bigquery": 300,
    "redshift": 127,
    "databricks": 255,
    "postgres": 63,
    "tsql": 128,
    "spark": 255,
    "trino": 255,
    "clickhouse": None,
    "mysql": 64,
    "duckdb": None,
    "sqlite": None,
}


def test_registry_has_the_twelve_warehouses() -> None:
    assert set(WAREHOUSES) == set(TWELVE)
    for dialect, limit in TWELVE.items():
        assert capabilities(dialect).identifier_limit == limit
        assert capabilities(dialect).sqlglot_dialect == dialect


@pytest.mark.parametrize(
    ("dialect", "columns"),
    [
        ("postgres", 1600),
        ("redshift", 1600),
        ("bigquery", 10_000),
        ("clickhouse", 1000),
        ("tsql", 1024),
    ],
)
def test_column_limits(dialect: str, columns: int) -> None:
    assert capabilities(dialect).max_columns == columns


def test_upsert_strategies() -> None:
    assert capabilities("snowflake").upsert is Upsert.MERGE
    assert capabilities("postgres").upsert is Upsert.ON_CONFLICT
    assert capabilities("sqlite").upsert is Upsert.ON_CONFLICT
    assert capabilities("duckdb").upsert is Upsert.ON_CONFLICT
    assert capabilities("mysql").upsert is Upsert.ON_DUPLICATE_KEY
    assert capabilities("clickhouse").upsert is Upsert.REPLACING_MERGE_TREE
    assert capabilities("spark").upsert is Upsert.REBUILD
    assert capabilities("oracle").upsert is Upsert.DELETE_INSERT


def test_one_column_per_add_column_where_required() -> None:
    assert capabilities("redshift").columns_per_add_column == 1
    assert capabilities("duckdb").columns_per_add_column == 1
    assert capabilities("postgres").columns_per_add_column is None


def test_identifier_units() -> None:
    assert capabilities("postgres").identifier_length("é") == 2
    assert capabilities("mysql").identifier_length("é") == 1


def test_aliases_and_other_dialects() -> None:
    assert capabilities("PostgreSQL").name == "postgres"
    assert capabilities("mariadb").name == "mysql"
    assert capabilities("synapse").name == "tsql"
    generic = capabilities("oracle")
    assert generic.name == "generic"
    assert generic.sqlglot_dialect == "oracle"
    assert not generic.verified_by_execution
    assert capabilities(generic) is generic
    assert "mariadb" in pw.known_dialects()


@pytest.mark.parametrize("bad", ["", "nosuch", 3])
def test_unknown_dialect(bad: object) -> None:
    with pytest.raises(pw.UnknownDialectError):
        capabilities(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("dialect", sorted(WAREHOUSES))
def test_every_type_parses_in_its_dialect(dialect: str) -> None:
    caps = capabilities(dialect)
    types = [*caps.column_types.values(), caps.boolean_type, caps.string_type]
    types += [caps.key_string_type, caps.timestamp_type]
    for name in types:
        built = exp.DataType.build(name, dialect=dialect)
        assert built.this is not exp.DataType.Type.UNKNOWN, name
    assert set(caps.column_types) == set(TraitType)


def test_every_flag_has_a_docstring() -> None:
    """Each flag of the base class carries a one-line docstring below it."""
    source = inspect.getsource(Capabilities)
    tree = ast.parse(source).body[0]
    assert isinstance(tree, ast.ClassDef)
    body = tree.body
    flags = [
        (i, node.target.id)
        for i, node in enumerate(body)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    ]
    assert len(flags) > 10
    for index, name in flags:
        following = body[index + 1]
        assert isinstance(following, ast.Expr), name
        assert isinstance(following.value, ast.Constant), name


def test_shared_code_never_branches_on_a_warehouse_name() -> None:
    """Flags, not names: no module outside warehouses/ compares a dialect to a literal."""
    root = Path(pw.__file__).parent
    names = set(TWELVE) | {"mariadb", "postgresql", "synapse"}
    offenders = []
    for path in root.rglob("*.py"):
        if "warehouses" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    if isinstance(side, ast.Constant) and side.value in names:
                        offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


def test_with_flags_derives_without_changing_the_original() -> None:
    duckdb = capabilities("duckdb")
    portable = duckdb.with_flags(filtered_arg_min=False)
    assert (duckdb.filtered_arg_min, portable.filtered_arg_min) == (True, False)
    assert isinstance(portable, type(duckdb))
    assert portable.sqlglot_dialect == duckdb.sqlglot_dialect
    assert type(duckdb.with_flags("Named", upsert=Upsert.MERGE)).__name__ == "Named"
    with pytest.raises(TypeError, match="no_such_flag"):
        duckdb.with_flags(no_such_flag=True)
