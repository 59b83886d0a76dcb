"""Snowflake: MERGE, VARIANT for JSON, TIMESTAMP_TZ, 255-character identifiers."""

from types import MappingProxyType

from personas_warehouse.model import TraitType
from personas_warehouse.warehouses.base import AlterType, Capabilities, IdentifierUnit, Upsert


class Snowflake(Capabilities):
    """Snowflake. Verified by golden SQL."""

    name = "snowflake"
    dialect = "snowflake"
    identifier_limit = 255
    identifier_unit = IdentifierUnit.CHARS
    max_columns = None
    upsert = Upsert.MERGE
    columns_per_add_column = 1  # IF NOT EXISTS is written once per ADD
    add_column_if_not_exists = True
    transactional_ddl = False
    alter_type = AlterType.COPY_RENAME  # only VARCHAR length / NUMBER precision change in place
    max_statement_bytes = 1024 * 1024
    column_types = MappingProxyType(
        {
            TraitType.BOOLEAN: "BOOLEAN",
            TraitType.INTEGER: "NUMBER(19, 0)",
            TraitType.NUMBER: "DOUBLE",
            TraitType.STRING: "VARCHAR",
            TraitType.TIMESTAMP: "TIMESTAMP_TZ",
            TraitType.JSON: "VARIANT",
        }
    )
    string_type = "VARCHAR"
    key_string_type = "VARCHAR"
    timestamp_type = "TIMESTAMP_TZ"
