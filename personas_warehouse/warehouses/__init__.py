"""The warehouses: one small capabilities class each, and the registry that finds them.

>>> capabilities("postgres").identifier_limit
63
>>> capabilities("oracle").name  # any other sqlglot dialect: the conservative profile
'generic'
>>> column_name("orderID", "postgres"), column_name("id", "snowflake")
('order_id', 'id_')
>>> column_name("2FA Enabled", "bigquery")
'_2fa_enabled'
>>> len(column_name("x" * 100, "postgres"))
63
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from sqlglot.dialects.dialect import Dialect

from personas_warehouse import naming
from personas_warehouse.errors import UnknownDialectError
from personas_warehouse.model import Space
from personas_warehouse.warehouses.base import (
    AlterType,
    Capabilities,
    IdentifierUnit,
    NumberText,
    PrimaryKey,
    RowsRelation,
    TimestampText,
    Upsert,
)
from personas_warehouse.warehouses.bigquery import BigQuery
from personas_warehouse.warehouses.clickhouse import ClickHouse
from personas_warehouse.warehouses.databricks import Databricks
from personas_warehouse.warehouses.duckdb import DuckDB
from personas_warehouse.warehouses.mysql import MySQL
from personas_warehouse.warehouses.postgres import Postgres
from personas_warehouse.warehouses.redshift import Redshift
from personas_warehouse.warehouses.snowflake import Snowflake
from personas_warehouse.warehouses.spark import Spark
from personas_warehouse.warehouses.sqlite import SQLite
from personas_warehouse.warehouses.synapse import Synapse
from personas_warehouse.warehouses.trino import Trino

__all__ = [
    "WAREHOUSES",
    "AlterType",
    "Capabilities",
    "IdentifierUnit",
    "NumberText",
    "PrimaryKey",
    "RowsRelation",
    "TimestampText",
    "Upsert",
    "capabilities",
    "column_name",
    "column_names",
    "known_dialects",
]

WAREHOUSES: Mapping[str, type[Capabilities]] = MappingProxyType(
    {
        cls.dialect: cls
        for cls in (
            Snowflake,
            BigQuery,
            Redshift,
            Databricks,
            Postgres,
            Synapse,
            Spark,
            Trino,
            ClickHouse,
            MySQL,
            DuckDB,
            SQLite,
        )
    }
)
"""The twelve warehouses with their own capabilities, by sqlglot dialect name."""

_ALIASES: Mapping[str, str] = MappingProxyType(
    {"postgresql": "postgres", "synapse": "tsql", "mariadb": "mysql", "sqlserver": "tsql"}
)


def known_dialects() -> list[str]:
    """Every dialect name :func:`capabilities` accepts (sqlglot's, plus aliases)."""
    names = {name for name in Dialect.classes if name}
    return sorted(names | set(_ALIASES))


def capabilities(dialect: str | Capabilities) -> Capabilities:
    """The capabilities of a warehouse, by sqlglot dialect name (or an alias like ``mariadb``).

    Raises :class:`UnknownDialectError` listing the known names for a name sqlglot does not know.
    """
    if isinstance(dialect, Capabilities):
        return dialect
    if not isinstance(dialect, str):
        raise UnknownDialectError(f"dialect must be a string such as 'duckdb', got {dialect!r}")
    name = dialect.strip().lower()
    name = _ALIASES.get(name, name)
    if name in WAREHOUSES:
        return WAREHOUSES[name]()
    if name and name in Dialect.classes:
        return Capabilities(dialect=name)
    raise UnknownDialectError(
        f"unknown dialect {dialect!r}; known dialects: {', '.join(known_dialects())}"
    )


def column_name(key: str, dialect: str | Capabilities) -> str:
    """The physical column of ``key`` in a warehouse of the given sqlglot dialect.

    The rules are in :mod:`personas_warehouse.naming` and ``docs/naming.md``: Segment's
    snake_case, the warehouse's identifier limit (longer names end in a hash of the key),
    reserved names renamed; deterministic and injective over the keys of any accepted Space.
    """
    return naming.column_name(key, capabilities(dialect))


def column_names(space: Space, dialect: str | Capabilities) -> Mapping[str, str]:
    """Every synced key of ``space`` with its column in that dialect, in ``space.keys`` order."""
    return naming.column_names(space, capabilities(dialect))
