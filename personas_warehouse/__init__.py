"""personas_warehouse: sync computed traits and audiences into any SQL warehouse, and rebuild
any user's state at any moment from the log.

>>> import personas_warehouse as pw
>>> space = pw.Space(traits=[pw.ComputedTrait("lifetime_value", pw.TraitType.NUMBER)],
...                  audiences=[pw.Audience("high_value_users")])
>>> pw.column_name("lifetime_value", "snowflake")
'lifetime_value'
"""

from __future__ import annotations

from personas_warehouse.errors import (
    ColumnCollisionError,
    ColumnLimitError,
    InvalidEventError,
    InvalidSpaceError,
    InvalidTimestampError,
    MigrationError,
    PersonasWarehouseError,
    SpaceFileError,
    SyncInProgressError,
    UnknownDialectError,
    UnsupportedValueError,
    WarehouseError,
)
from personas_warehouse.model import (
    DEFAULT_SCHEMA,
    Audience,
    ComputedTrait,
    IdentifyEvent,
    Membership,
    Space,
    TraitType,
    UserState,
)
from personas_warehouse.warehouses import capabilities, column_name, column_names, known_dialects

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SCHEMA",
    "Audience",
    "ColumnCollisionError",
    "ColumnLimitError",
    "ComputedTrait",
    "IdentifyEvent",
    "InvalidEventError",
    "InvalidSpaceError",
    "InvalidTimestampError",
    "Membership",
    "MigrationError",
    "PersonasWarehouseError",
    "Space",
    "SpaceFileError",
    "SyncInProgressError",
    "TraitType",
    "UnknownDialectError",
    "UnsupportedValueError",
    "UserState",
    "WarehouseError",
    "__version__",
    "capabilities",
    "column_name",
    "column_names",
    "known_dialects",
]
