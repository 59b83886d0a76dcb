"""DuckDB: ON CONFLICT, TIMESTAMPTZ, JSON, one column per ADD COLUMN, no identifier limit."""

from types import MappingProxyType

from personas_warehouse.model import TraitType
from personas_warehouse.warehouses.base import AlterType, Capabilities, Upsert


class DuckDB(Capabilities):
    """DuckDB (the embedded warehouse of the demo). Verified by execution."""

    name = "duckdb"
    dialect = "duckdb"
    verified_by_execution = True
    filtered_arg_min = True
    identifier_limit = None
    max_columns = None
    upsert = Upsert.ON_CONFLICT
    staged_upsert = Upsert.DELETE_INSERT
    columns_per_add_column = 1
    add_column_if_not_exists = True
    transactional_ddl = True
    alter_type = AlterType.ALTER_COLUMN_TYPE
    alter_type_using = True
    max_statement_bytes = 64 * 1024 * 1024
    column_types = MappingProxyType(
        {
            TraitType.BOOLEAN: "BOOLEAN",
            TraitType.INTEGER: "BIGINT",
            TraitType.NUMBER: "DOUBLE",
            TraitType.STRING: "VARCHAR",
            TraitType.TIMESTAMP: "TIMESTAMPTZ",
            TraitType.JSON: "JSON",
        }
    )
    string_type = "VARCHAR"
    key_string_type = "VARCHAR"
