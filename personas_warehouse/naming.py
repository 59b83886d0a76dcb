"""Key -> column: Segment's snake_case, each warehouse's identifier limit, no collisions.

The rules, in order (each documented in ``docs/naming.md``):

1. the key's Segment snake_case (:func:`personas_warehouse.model.segment_snake_case`); where a
   column must start with a letter (BigQuery) a leading digit gets a ``_`` before it;
2. a key with no ASCII letter or digit is named ``key__<hash>``;
3. a name equal to a column the tables themselves carry (:data:`RESERVED_COLUMNS`), or to a
   boolean literal (:data:`LITERAL_NAMES`), gets a trailing ``_`` (``id`` -> ``id_``,
   ``True`` -> ``true_``);
4. a name longer than the warehouse allows is cut and ends in ``__<hash>``.

``<hash>`` is the first 10 hex digits of the SHA-256 of the key. snake_case never produces a
trailing ``_`` nor a ``__``, so renamed columns cannot meet a plain one.

This module knows no warehouse: it takes the identifier rules (:class:`NamingRules`) as an
argument. Each warehouse's capabilities are such rules, and ``pw.column_name(key, dialect)``
(in :mod:`personas_warehouse.warehouses`) looks them up by dialect name.

>>> rules = IdentifierRules(identifier_limit=63, identifier_unit=IdentifierUnit.BYTES)
>>> column_name("orderID", rules)
'order_id'
>>> column_name("id", rules)
'id_'
>>> column_name("2FA Enabled", IdentifierRules(identifier_must_start_with_letter=True))
'_2fa_enabled'
>>> len(column_name("x" * 100, rules))
63
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from typing import Final, Protocol

import attrs

from personas_warehouse.errors import ColumnCollisionError, InvalidSpaceError
from personas_warehouse.model import Space, portable_stem, segment_snake_case

__all__ = [
    "HASH_LENGTH",
    "LITERAL_NAMES",
    "RESERVED_COLUMNS",
    "IdentifierRules",
    "IdentifierUnit",
    "NamingRules",
    "check_identifier",
    "column_name",
    "column_names",
    "identifier_length",
    "key_hash",
]


class IdentifierUnit(enum.Enum):
    """What an identifier length limit counts."""

    BYTES = "bytes"
    """UTF-8 bytes (Postgres, Redshift)."""
    CHARS = "chars"
    """Characters."""


class NamingRules(Protocol):
    """The identifier rules of a warehouse (every warehouse's capabilities are such rules)."""

    @property
    def identifier_limit(self) -> int | None:
        """Longest identifier in ``identifier_unit``; ``None`` for no practical limit."""

    @property
    def identifier_unit(self) -> IdentifierUnit:
        """What ``identifier_limit`` counts."""

    @property
    def identifier_must_start_with_letter(self) -> bool:
        """A column must start with a letter or ``_``, even quoted (BigQuery)."""

    @property
    def sqlglot_dialect(self) -> str:
        """The dialect's name, for messages."""


@attrs.frozen
class IdentifierRules:
    """Plain :class:`NamingRules`, for a warehouse the library has no capabilities for."""

    identifier_limit: int | None = attrs.field(default=None)
    identifier_unit: IdentifierUnit = IdentifierUnit.CHARS
    identifier_must_start_with_letter: bool = False
    sqlglot_dialect: str = "custom"

    @identifier_limit.validator
    def _check_limit(self, _: attrs.Attribute[int | None], value: int | None) -> None:
        if value is not None and value < MIN_IDENTIFIER_LIMIT:
            raise InvalidSpaceError(
                f"identifier_limit must be at least {MIN_IDENTIFIER_LIMIT} (room for a "
                f"shortened name and its hash), got {value}"
            )


def identifier_length(name: str, rules: NamingRules) -> int:
    """The length of ``name`` as a warehouse with these rules counts it."""
    if rules.identifier_unit is IdentifierUnit.BYTES:
        return len(name.encode("utf-8"))
    return len(name)


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

LITERAL_NAMES: Final = frozenset({"true", "false"})
"""Names a key is renamed from on every warehouse: SQLite reads the boolean literals ahead of a
subquery's column of that name (``SELECT s."true" FROM (SELECT ... AS "true") AS s`` fails with
"no such column"), and the as-of and users statements read keys through subqueries. The rename
applies everywhere so a Space has the same columns on every warehouse."""

HASH_LENGTH: Final = 10
"""Hex digits of the key's SHA-256 used in hashed names."""

_SUFFIX_LENGTH: Final = 2 + HASH_LENGTH  # "__" + hash

MIN_IDENTIFIER_LIMIT: Final = _SUFFIX_LENGTH + 4
"""The shortest identifier limit naming can honour (a 4-character head, ``__``, the hash)."""


def key_hash(key: str) -> str:
    """The first :data:`HASH_LENGTH` hex digits of the SHA-256 of ``key`` (UTF-8)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def column_name(key: str, rules: NamingRules) -> str:
    """The physical column of ``key`` in a warehouse with these identifier rules.

    Deterministic, within the warehouse's identifier limit, and injective over the keys of any
    :class:`~personas_warehouse.Space` (which refuses keys whose stems collide).
    """
    if not isinstance(key, str):
        raise InvalidSpaceError(f"key must be a string, got {key!r}")
    stem = (
        portable_stem(key) if rules.identifier_must_start_with_letter else segment_snake_case(key)
    )
    if not stem:
        return f"key__{key_hash(key)}"
    if stem in RESERVED_COLUMNS or stem in LITERAL_NAMES:
        stem += "_"
    limit = rules.identifier_limit
    if limit is not None and identifier_length(stem, rules) > limit:
        # Names are ASCII here, so bytes and characters agree.
        head = stem[: limit - _SUFFIX_LENGTH].rstrip("_")
        stem = f"{head}__{key_hash(key)}"
    return stem


def column_names(space: Space, rules: NamingRules) -> Mapping[str, str]:
    """Every synced key of ``space`` with its column, in ``space.keys`` order.

    Raises :class:`ColumnCollisionError` naming both keys if two keys would share a column once
    the warehouse folds case (never seen for a Space that was accepted; checked all the same).
    """
    columns: dict[str, str] = {}
    folded: dict[str, str] = {}
    for key in space.keys:
        column = column_name(key, rules)
        other = folded.get(column.casefold())
        if other is not None:
            raise ColumnCollisionError(
                f"keys {other!r} and {key!r} would share the column {column!r} in "
                f"{rules.sqlglot_dialect}; rename one of them"
            )
        folded[column.casefold()] = key
        columns[key] = column
    return columns


def check_identifier(name: str, rules: NamingRules, what: str = "identifier") -> str:
    """Check a user-chosen identifier (a schema name) fits the warehouse; returns it unchanged.

    Unlike keys, such names are never rewritten: a name that does not fit is an error.
    """
    if not name or "\x00" in name:
        raise InvalidSpaceError(f"{what} {name!r} must be non-empty and free of NUL bytes")
    limit = rules.identifier_limit
    length = identifier_length(name, rules)
    if limit is not None and length > limit:
        raise InvalidSpaceError(
            f"{what} {name!r} is {length} {rules.identifier_unit.value} "
            f"long; {rules.sqlglot_dialect} allows {limit}: choose a shorter name"
        )
    return name
