"""Databricks (Delta): MERGE, ADD COLUMNS, 255-character identifiers."""

from types import MappingProxyType

from personas_warehouse.model import TraitType
from personas_warehouse.warehouses.base import (
    AlterType,
    Capabilities,
    IdentifierUnit,
    PrimaryKey,
    TimestampText,
    Upsert,
)


class Databricks(Capabilities):
    """Databricks SQL on Delta tables. Verified by golden SQL."""

    name = "databricks"
    dialect = "databricks"
    identifier_limit = 255
    identifier_unit = IdentifierUnit.CHARS
    max_columns = None
    upsert = Upsert.MERGE
    columns_per_add_column = None
    add_column_if_not_exists = False
    transactions = False
    transactional_ddl = False
    alter_type = AlterType.REBUILD_TABLE  # Delta changes a column type only by rewriting
    word_schema_names = True
    schema_name_limit = 252  # the directory <name>.db must fit a 255-byte file name
    primary_key = PrimaryKey.NONE
    alter_type_fallback = AlterType.REBUILD_TABLE
    drop_column = False  # needs Delta column mapping
    timestamp_text = TimestampText.FORMAT  # the session time zone is UTC
    max_statement_bytes = 16 * 1024 * 1024
    column_types = MappingProxyType(
        {
            TraitType.BOOLEAN: "BOOLEAN",
            TraitType.INTEGER: "BIGINT",
            TraitType.NUMBER: "DOUBLE",
            TraitType.STRING: "STRING",
            TraitType.TIMESTAMP: "TIMESTAMP",
            TraitType.JSON: "STRING",
        }
    )
    string_type = "STRING"
    key_string_type = "STRING"
    timestamp_type = "TIMESTAMP"
