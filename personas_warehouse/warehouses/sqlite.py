"""SQLite: no schemas (an attached database stands for one), no time-zone type, no casts."""

from types import MappingProxyType

from personas_warehouse.model import TraitType
from personas_warehouse.warehouses.base import (
    AlterType,
    Capabilities,
    NumberText,
    RowsRelation,
    TimestampText,
    Upsert,
)


class SQLite(Capabilities):
    """SQLite 3.35+. Verified by execution.

    A schema is an attached database (``ATTACH DATABASE 'file' AS personas_default``), which
    the runner attaches. Instants are ISO-8601 UTC text, which sorts and round-trips exactly.
    """

    name = "sqlite"
    dialect = "sqlite"
    verified_by_execution = True
    identifier_limit = None
    max_columns = 2000  # SQLITE_MAX_COLUMN
    upsert = Upsert.ON_CONFLICT
    columns_per_add_column = 1
    add_column_if_not_exists = False
    schemas = False
    transactional_ddl = True
    alter_type = AlterType.REBUILD_TABLE
    alter_type_fallback = AlterType.REBUILD_TABLE
    number_text = NumberText.SHORTEST_OR_17_DIGITS
    timestamp_text = TimestampText.TEXT
    max_statement_bytes = 1_000_000  # well under SQLITE_MAX_SQL_LENGTH
    timezone_type = False
    rows_relation = RowsRelation.CTE  # a derived table cannot name its columns: a CTE does
    column_types = MappingProxyType(
        {
            TraitType.BOOLEAN: "BOOLEAN",
            TraitType.INTEGER: "INTEGER",
            TraitType.NUMBER: "REAL",
            TraitType.STRING: "TEXT",
            TraitType.TIMESTAMP: "TEXT",
            TraitType.JSON: "TEXT",
        }
    )
    key_string_type = "TEXT"
    timestamp_type = "TEXT"
