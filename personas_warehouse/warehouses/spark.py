"""Spark on plain (parquet) tables: no row-level DML, so ``users`` is rebuilt by overwrite."""

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


class Spark(Capabilities):
    """Apache Spark SQL (4.x) with parquet tables. Verified by execution (local mode)."""

    name = "spark"
    dialect = "spark"
    verified_by_execution = True
    identifier_limit = 255
    identifier_unit = IdentifierUnit.CHARS
    max_columns = None
    upsert = Upsert.REBUILD
    columns_per_add_column = None
    add_column_if_not_exists = False
    transactions = False
    transactional_ddl = False
    alter_type = AlterType.REBUILD_TABLE
    word_schema_names = True
    schema_name_limit = 252  # the directory <name>.db must fit a 255-byte file name
    primary_key = PrimaryKey.NONE
    table_format = "PARQUET"
    alter_type_fallback = AlterType.REBUILD_TABLE
    drop_column = False  # parquet tables cannot drop a column
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
