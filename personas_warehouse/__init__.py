"""personas_warehouse: sync computed traits and audiences into any SQL warehouse, and rebuild
any user's state at any moment from the log.

>>> import personas_warehouse as pw
>>> space = pw.Space(traits=[pw.ComputedTrait("lifetime_value", pw.TraitType.NUMBER)],
...                  audiences=[pw.Audience("high_value_users")])
>>> pw.column_name("lifetime_value", "snowflake")
'lifetime_value'
>>> import datetime as dt
>>> t = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
>>> log = pw.IdentifiesLog(space, [pw.IdentifyEvent("m1", "u1", t, {"high_value_users": True})])
>>> log.reconstruct_state("u1", t).membership("high_value_users")
<Membership.IN: True>
>>> pw.reconstruct_state(log, "u1", t - dt.timedelta(seconds=1)).audiences
{'high_value_users': None}
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
from personas_warehouse.log import Change, IdentifiesLog, MembershipInterval, reconstruct_state
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
from personas_warehouse.runner.warehouse import Freshness, SyncResult, SyncRun, Warehouse
from personas_warehouse.sql.ddl import (
    create_statements,
    drop_column_statements,
    migrate_statements,
)
from personas_warehouse.sql.dml import insert_statements
from personas_warehouse.sql.query import as_of_query
from personas_warehouse.sync import ComputedResults, SyncPlan, plan_sync
from personas_warehouse.warehouses import capabilities, column_name, column_names, known_dialects

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SCHEMA",
    "Audience",
    "Change",
    "ColumnCollisionError",
    "ColumnLimitError",
    "ComputedResults",
    "ComputedTrait",
    "Freshness",
    "IdentifiesLog",
    "IdentifyEvent",
    "InvalidEventError",
    "InvalidSpaceError",
    "InvalidTimestampError",
    "Membership",
    "MembershipInterval",
    "MigrationError",
    "PersonasWarehouseError",
    "Space",
    "SpaceFileError",
    "SyncInProgressError",
    "SyncPlan",
    "SyncResult",
    "SyncRun",
    "TraitType",
    "UnknownDialectError",
    "UnsupportedValueError",
    "UserState",
    "Warehouse",
    "WarehouseError",
    "__version__",
    "as_of_query",
    "capabilities",
    "column_name",
    "column_names",
    "create_statements",
    "drop_column_statements",
    "insert_statements",
    "known_dialects",
    "migrate_statements",
    "plan_sync",
    "reconstruct_state",
]
