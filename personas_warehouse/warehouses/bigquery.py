"""BigQuery: MERGE, JSON, 300-character columns that start with a letter or underscore."""

from types import MappingProxyType

from personas_warehouse.model import TraitType
from personas_warehouse.warehouses.base import (
    AlterType,
    Capabilities,
    IdentifierUnit,
    PrimaryKey,
    Upsert,
)


class BigQuery(Capabilities):
    """Google BigQuery. Verified by golden SQL."""

    name = "bigquery"
    dialect = "bigquery"
    identifier_limit = 300
    identifier_unit = IdentifierUnit.CHARS
    identifier_must_start_with_letter = True
    max_columns = 10_000
    upsert = Upsert.MERGE
    columns_per_add_column = None
    add_column_if_not_exists = True
    transactional_ddl = False
    alter_type = AlterType.ALTER_COLUMN_TYPE  # INT64 -> FLOAT64 and others via SET DATA TYPE
    primary_key = PrimaryKey.NOT_ENFORCED
    max_statement_bytes = 1024 * 1024
    column_types = MappingProxyType(
        {
            TraitType.BOOLEAN: "BOOL",
            TraitType.INTEGER: "INT64",
            TraitType.NUMBER: "FLOAT64",
            TraitType.STRING: "STRING",
            TraitType.TIMESTAMP: "TIMESTAMP",
            TraitType.JSON: "JSON",
        }
    )
    boolean_type = "BOOL"
    string_type = "STRING"
    key_string_type = "STRING"
    timestamp_type = "TIMESTAMP"
