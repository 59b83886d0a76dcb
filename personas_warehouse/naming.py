"""Key -> column: Segment's snake_case, each warehouse's identifier limit, no collisions.

The rules, in order (each documented in ``docs/naming.md``):

1. the key's Segment snake_case (:func:`personas_warehouse.model.segment_snake_case`); where a
   column must start with a letter (BigQuery) a leading digit gets a ``_`` before it;
2. a key with no ASCII letter or digit is named ``key__<hash>``;
3. a name equal to a column the tables themselves carry (:data:`RESERVED_COLUMNS`) gets a
   trailing ``_`` (``id`` -> ``id_``);
4. a name longer than the warehouse allows is cut and ends in ``__<hash>``.

``<hash>`` is the first 10 hex digits of the SHA-256 of the key. snake_case never produces a
trailing ``_`` nor a ``__``, so renamed columns cannot meet a plain one.

>>> column_name("orderID", "postgres")
'order_id'
>>> column_name("id", "snowflake")
'id_'
>>> column_name("2FA Enabled", "bigquery")
'_2fa_enabled'
>>> len(column_name("x" * 100, "postgres"))
63
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Final

from personas_warehouse.errors import ColumnCollisionError, InvalidSpaceError
from personas_warehouse.model import Space, portable_stem, segment_snake_case
from personas_warehouse.warehouses import Capabilities, capabilities

__all__ = [
    "HASH_LENGTH",
    "RESERVED_COLUMNS",
    "check_identifier",
    "column_name",
    "column_names",
    "key_hash",
]

RESERVED_COLUMNS: Final = frozenset(
    {
        # Segment's identifies and users columns
        "id",
        "user_id",
        "anonymous_id",
        "timestamp",
        "received_at",
        "sent_at",
        "original_timestamp",
        "uuid",
        "uuid_ts",
        "loaded_at",
        "context",
        "event",
        "event_text",
        "message_id",
        # personas_warehouse's own columns
        "cleared_keys",
        "sync_run_id",
        "version",
        "deleted",
    }
)
"""Column names the tables carry themselves; a key that would take one is renamed."""

HASH_LENGTH: Final = 10
"""Hex digits of the key's SHA-256 used in hashed names."""

_SUFFIX_LENGTH: Final = 2 + HASH_LENGTH  # "__" + hash


def key_hash(key: str) -> str:
    """The first :data:`HASH_LENGTH` hex digits of the SHA-256 of ``key`` (UTF-8)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def column_name(key: str, dialect: str | Capabilities) -> str:
    """The physical column of ``key`` in a warehouse of the given sqlglot dialect.

    Deterministic, within the warehouse's identifier limit, and injective over the keys of any
    :class:`~personas_warehouse.Space` (which refuses keys whose stems collide).
    """
    caps = capabilities(dialect)
    if not isinstance(key, str):
        raise InvalidSpaceError(f"key must be a string, got {key!r}")
    stem = portable_stem(key) if caps.identifier_must_start_with_letter else segment_snake_case(key)
    if not stem:
        return f"key__{key_hash(key)}"
    if stem in RESERVED_COLUMNS:
        stem += "_"
    limit = caps.identifier_limit
    if limit is not None and caps.identifier_length(stem) > limit:
        # Names are ASCII here, so bytes and characters agree.
        head = stem[: limit - _SUFFIX_LENGTH].rstrip("_")
        stem = f"{head}__{key_hash(key)}"
    return stem


def column_names(space: Space, dialect: str | Capabilities) -> Mapping[str, str]:
    """Every synced key of ``space`` with its column, in ``space.keys`` order.

    Raises :class:`ColumnCollisionError` naming both keys if two keys would share a column once
    the warehouse folds case (never seen for a Space that was accepted; checked all the same).
    """
    caps = capabilities(dialect)
    columns: dict[str, str] = {}
    folded: dict[str, str] = {}
    for key in space.keys:
        column = column_name(key, caps)
        other = folded.get(column.casefold())
        if other is not None:
            raise ColumnCollisionError(
                f"keys {other!r} and {key!r} would share the column {column!r} in "
                f"{caps.sqlglot_dialect}; rename one of them"
            )
        folded[column.casefold()] = key
        columns[key] = column
    return columns


def check_identifier(name: str, dialect: str | Capabilities, what: str = "identifier") -> str:
    """Check a user-chosen identifier (a schema name) fits the warehouse; returns it unchanged.

    Unlike keys, such names are never rewritten: a name that does not fit is an error.
    """
    caps = capabilities(dialect)
    if not name or "\x00" in name:
        raise InvalidSpaceError(f"{what} {name!r} must be non-empty and free of NUL bytes")
    limit = caps.identifier_limit
    if limit is not None and caps.identifier_length(name) > limit:
        raise InvalidSpaceError(
            f"{what} {name!r} is {caps.identifier_length(name)} {caps.identifier_unit.value} "
            f"long; {caps.sqlglot_dialect} allows {limit}: choose a shorter name"
        )
    return name
