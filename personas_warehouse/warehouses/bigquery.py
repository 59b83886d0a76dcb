"""BigQuery: MERGE, JSON, 300-character columns that start with a letter or underscore."""

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
    alter_type = AlterType.ALTER_COLUMN_TYPE  # SET DATA TYPE: only INT64 -> FLOAT64 here
    primary_key = PrimaryKey.NOT_ENFORCED
    word_schema_names = True  # dataset names: letters, digits and underscores
    in_place_widenings = frozenset({(TraitType.INTEGER, TraitType.NUMBER)})
    timestamp_text = TimestampText.FORMAT_IN_ZONE
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
