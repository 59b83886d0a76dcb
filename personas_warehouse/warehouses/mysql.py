"""MySQL and MariaDB: ON DUPLICATE KEY UPDATE, 64-character identifiers, UTC in DATETIME(6)."""

from types import MappingProxyType

from personas_warehouse.model import TraitType
from personas_warehouse.warehouses.base import (
    AlterType,
    Capabilities,
    IdentifierUnit,
    TimestampText,
    Upsert,
)


class MySQL(Capabilities):
    """MySQL 8 / MariaDB 10.6+. Verified by execution (MariaDB 10.11).

    TIMESTAMP stops in 2038, so instants are DATETIME(6) holding UTC (drivers drop offsets).
    """

    name = "mysql"
    dialect = "mysql"
    verified_by_execution = True
    binary_text_type = "BINARY"  # utf8mb4_bin pads: 'm1' = 'm1 '; bytes never do
    bmp_identifiers = True  # error 1300 for a database named with an emoji
    ids_keep_trailing_spaces = False  # every utf8mb4 collation common to both pads
    key_collation = "utf8mb4_bin"  # on MySQL 8 and MariaDB; the default utf8mb4_general_ci
    # takes 'a' = 'A' = 'á'. It still pads trailing spaces (see docs/guarantees.md).
    identifier_limit = 64
    identifier_unit = IdentifierUnit.CHARS
    max_columns = 1017  # InnoDB
    upsert = Upsert.ON_DUPLICATE_KEY
    delete_join = True  # MariaDB 10.11 runs `DELETE ... WHERE id IN (SELECT ...)` row by row
    columns_per_add_column = None
    add_column_if_not_exists = False  # MariaDB has it, MySQL does not
    transactional_ddl = False
    alter_type = AlterType.MODIFY_COLUMN
    in_place_widenings = frozenset(
        {
            (TraitType.INTEGER, TraitType.NUMBER),
            (TraitType.INTEGER, TraitType.STRING),
            (TraitType.NUMBER, TraitType.STRING),
        }
    )
    timestamp_text = TimestampText.FORMAT  # DATETIME(6) holds UTC wall time
    max_statement_bytes = 4 * 1024 * 1024
    timezone_type = False
    column_types = MappingProxyType(
        {
            TraitType.BOOLEAN: "BOOLEAN",
            TraitType.INTEGER: "BIGINT",
            TraitType.NUMBER: "DOUBLE",
            TraitType.STRING: "LONGTEXT",
            TraitType.TIMESTAMP: "DATETIME(6)",
            TraitType.JSON: "JSON",
        }
    )
    string_type = "LONGTEXT"
    key_string_type = "VARCHAR(255)"  # an indexed utf8mb4 column
    timestamp_type = "DATETIME(6)"
