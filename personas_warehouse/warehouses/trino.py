"""Trino: MERGE (connector permitting), one column per ADD COLUMN, TIMESTAMP WITH TIME ZONE."""

from types import MappingProxyType

from personas_warehouse.model import TraitType
from personas_warehouse.warehouses.base import (
    AlterType,
    Capabilities,
    IdentifierUnit,
    PrimaryKey,
    Upsert,
)


class Trino(Capabilities):
    """Trino (Iceberg or Delta connector). Verified by golden SQL."""

    name = "trino"
    dialect = "trino"
    identifier_limit = 255
    identifier_unit = IdentifierUnit.CHARS
    max_columns = None
    upsert = Upsert.MERGE
    columns_per_add_column = 1
    add_column_if_not_exists = True
    transactions = False
    transactional_ddl = False
    alter_type = AlterType.COPY_RENAME  # SET DATA TYPE widens only int -> bigint, float -> double
    primary_key = PrimaryKey.NONE
    max_statement_bytes = 1024 * 1024
    column_types = MappingProxyType(
        {
            TraitType.BOOLEAN: "BOOLEAN",
            TraitType.INTEGER: "BIGINT",
            TraitType.NUMBER: "DOUBLE",
            TraitType.STRING: "VARCHAR",
            TraitType.TIMESTAMP: "TIMESTAMP(6) WITH TIME ZONE",
            TraitType.JSON: "VARCHAR",  # Iceberg and Delta have no JSON column type
        }
    )
    string_type = "VARCHAR"
    key_string_type = "VARCHAR"
    timestamp_type = "TIMESTAMP(6) WITH TIME ZONE"
