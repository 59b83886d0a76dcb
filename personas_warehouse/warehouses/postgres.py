"""PostgreSQL: ON CONFLICT, transactional DDL, 63-byte identifiers, 1600 columns, JSONB."""

from types import MappingProxyType

from personas_warehouse.model import TraitType
from personas_warehouse.warehouses.base import AlterType, Capabilities, IdentifierUnit, Upsert


class Postgres(Capabilities):
    """PostgreSQL 12+. Verified by execution (PostgreSQL 15)."""

    name = "postgres"
    dialect = "postgres"
    verified_by_execution = True
    identifier_limit = 63
    identifier_unit = IdentifierUnit.BYTES
    max_columns = 1600
    upsert = Upsert.ON_CONFLICT
    staged_upsert = Upsert.DELETE_INSERT
    columns_per_add_column = None
    add_column_if_not_exists = True
    transactional_ddl = True
    alter_type = AlterType.ALTER_COLUMN_TYPE
    alter_type_using = True
    max_statement_bytes = 64 * 1024 * 1024
    column_types = MappingProxyType(
        {
            TraitType.BOOLEAN: "BOOLEAN",
            TraitType.INTEGER: "BIGINT",
            TraitType.NUMBER: "DOUBLE PRECISION",
            TraitType.STRING: "TEXT",
            TraitType.TIMESTAMP: "TIMESTAMPTZ",
            TraitType.JSON: "JSONB",
        }
    )
    key_string_type = "TEXT"
    binary_collation = "C"  # a database created with en_US.UTF-8 orders 'a' < 'B'
