"""Azure Synapse / T-SQL: MERGE, DATETIMEOFFSET, NVARCHAR(MAX), 128-character identifiers."""

from types import MappingProxyType

from personas_warehouse.model import TraitType
from personas_warehouse.warehouses.base import (
    AlterType,
    Capabilities,
    IdentifierUnit,
    NumberText,
    PrimaryKey,
    Upsert,
)


class Synapse(Capabilities):
    """Azure Synapse Analytics (dedicated SQL pool), SQL Server dialect. Golden SQL."""

    name = "tsql"
    dialect = "tsql"
    identifier_limit = 128
    identifier_unit = IdentifierUnit.CHARS
    max_columns = 1024
    upsert = Upsert.MERGE
    columns_per_add_column = None
    add_column_if_not_exists = False
    transactional_ddl = True
    alter_type = AlterType.ALTER_COLUMN_TYPE  # other widenings: copy + sp_rename
    primary_key = PrimaryKey.NONE
    rename_column_procedure = True
    word_schema_names = True  # sqlglot's CREATE SCHEMA guard compares a quoted name otherwise
    number_text = NumberText.CONVERT_STYLE_3
    max_statement_bytes = 4 * 1024 * 1024
    column_types = MappingProxyType(
        {
            TraitType.BOOLEAN: "BIT",
            TraitType.INTEGER: "BIGINT",
            TraitType.NUMBER: "FLOAT",
            TraitType.STRING: "NVARCHAR(MAX)",
            TraitType.TIMESTAMP: "DATETIMEOFFSET(6)",
            TraitType.JSON: "NVARCHAR(MAX)",
        }
    )
    boolean_type = "BIT"
    string_type = "NVARCHAR(MAX)"
    key_string_type = "NVARCHAR(450)"  # 900-byte index key limit
    timestamp_type = "DATETIMEOFFSET(6)"
