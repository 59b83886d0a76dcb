"""The physical layout of the tables: which columns each has, with their types per warehouse.

``identifies`` follows Segment: ``id`` (the message id), ``user_id``, ``timestamp``,
``received_at``, ``uuid_ts`` (load time) and one column per key. Beside them,
``cleared_keys`` tells an explicit clear from an absent key: it holds the columns the event
cleared, as ``,col_a,col_b,`` (column names never contain a comma), or NULL.

``users`` has ``id`` (the user id), one column per key, ``timestamp`` (the time of the user's
latest change: the newest counted event), ``received_at`` (the newest ``received_at`` of those
events) and ``uuid_ts`` (when the row was written).

``sync_runs`` records every sync (see the runner).

On warehouses whose upsert is :attr:`Upsert.REPLACING_MERGE_TREE` (ClickHouse) the tables
also carry ``version`` (UInt64): the engine keeps the row with the highest version per id
(``ORDER BY id``; read with ``FINAL``). There the key columns are ``Nullable(...)`` and the
tables' own columns are not: a NULL written to one of those is stored as the type's default
(``''``, 1970-01-01).

Column order is the order of these lists when a table is created; a migration appends new
columns and may move a widened one to the end, so code that writes rows names its columns.

>>> from personas_warehouse.model import Space, Audience
>>> [c.name for c in users_columns(Space(audiences=[Audience("vip")]), "postgres")]
['id', 'vip', 'timestamp', 'received_at', 'uuid_ts']
"""

from __future__ import annotations

from typing import Final

import attrs
from sqlglot import exp

from personas_warehouse.model import Space, TraitType
from personas_warehouse.naming import column_names
from personas_warehouse.warehouses import Capabilities, Upsert, capabilities

__all__ = [
    "CLEARED_DELIMITER",
    "IDENTIFIES",
    "SYNC_RUNS",
    "USERS",
    "Column",
    "identifies_columns",
    "sync_runs_columns",
    "table",
    "users_columns",
]

IDENTIFIES: Final = "identifies"
USERS: Final = "users"
SYNC_RUNS: Final = "sync_runs"
CLEARED_DELIMITER: Final = ","
"""Separates and brackets the column names in ``identifies.cleared_keys``."""


@attrs.frozen(slots=True)
class Column:
    """One physical column: its name, type (in the warehouse's SQL), and what it holds."""

    name: str
    type: str
    nullable: bool = True
    key: str | None = None
    """The trait or audience key stored here; ``None`` for the table's own columns."""
    primary_key: bool = False
    collation: str | None = None
    """The column's own collation (``Capabilities.key_collation`` for ids), else the table's."""


def _version(caps: Capabilities) -> list[Column]:
    if caps.upsert is Upsert.REPLACING_MERGE_TREE:
        return [Column("version", "UInt64", nullable=False)]
    return []


def _key_columns(space: Space, caps: Capabilities) -> list[Column]:
    names = column_names(space, caps)
    types = space.trait_types
    columns = [
        Column(names[key], caps.column_types[types[key]], key=key) for key in space.trait_keys
    ]
    columns += [Column(names[key], caps.boolean_type, key=key) for key in space.audience_keys]
    return columns


def _id_column(caps: Capabilities) -> Column:
    """``id``, the key of ``identifies`` and ``users``."""
    return Column(
        "id", caps.key_string_type, nullable=False, primary_key=True, collation=caps.key_collation
    )


def identifies_columns(space: Space, dialect: str | Capabilities) -> list[Column]:
    """The columns of ``identifies``, in table order."""
    caps = capabilities(dialect)
    return [
        _id_column(caps),
        Column("user_id", caps.key_string_type, nullable=False, collation=caps.key_collation),
        Column("timestamp", caps.timestamp_type, nullable=False),
        Column("received_at", caps.timestamp_type, nullable=False),
        Column("uuid_ts", caps.timestamp_type),
        Column("cleared_keys", caps.string_type),
        *_version(caps),
        *_key_columns(space, caps),
    ]


def users_columns(space: Space, dialect: str | Capabilities) -> list[Column]:
    """The columns of ``users``, in table order."""
    caps = capabilities(dialect)
    return [
        _id_column(caps),
        *_key_columns(space, caps),
        Column("timestamp", caps.timestamp_type),
        Column("received_at", caps.timestamp_type),
        Column("uuid_ts", caps.timestamp_type),
        *_version(caps),
    ]


def sync_runs_columns(dialect: str | Capabilities) -> list[Column]:
    """The columns of ``sync_runs``: one row per sync run."""
    caps = capabilities(dialect)
    return [
        Column("run_id", caps.key_string_type, nullable=False, primary_key=True),
        Column("at", caps.timestamp_type, nullable=False),
        Column("started_at", caps.timestamp_type, nullable=False),
        Column("finished_at", caps.timestamp_type),
        Column("status", caps.key_string_type, nullable=False),
        Column("rows_written", caps.column_types[TraitType.INTEGER]),
        Column("counts", caps.string_type),
        *_version(caps),
    ]


def table(space: Space, name: str) -> exp.Table:
    """The schema-qualified table ``name`` of ``space`` (an attached database on SQLite)."""
    return exp.table_(name, db=space.schema)
