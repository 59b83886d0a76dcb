"""Redshift: 127-byte identifiers, 1600 columns, one column per ADD COLUMN, SUPER for JSON."""

from types import MappingProxyType

from personas_warehouse.model import TraitType
from personas_warehouse.warehouses.base import AlterType, Capabilities, IdentifierUnit, Upsert


class Redshift(Capabilities):
    """Amazon Redshift. Verified by golden SQL."""

    name = "redshift"
    dialect = "redshift"
    identifier_limit = 127
    identifier_unit = IdentifierUnit.BYTES
    max_columns = 1600
    upsert = Upsert.MERGE
    columns_per_add_column = 1
    add_column_if_not_exists = False
    transactional_ddl = True
    alter_type = AlterType.COPY_RENAME  # ALTER COLUMN TYPE only lengthens a VARCHAR
    max_statement_bytes = 16 * 1024 * 1024
    column_types = MappingProxyType(
        {
            TraitType.BOOLEAN: "BOOLEAN",
            TraitType.INTEGER: "BIGINT",
            TraitType.NUMBER: "DOUBLE PRECISION",
            TraitType.STRING: "VARCHAR(65535)",
            TraitType.TIMESTAMP: "TIMESTAMPTZ",
            TraitType.JSON: "SUPER",
        }
    )
    string_type = "VARCHAR(65535)"
    key_string_type = "VARCHAR(1024)"
