"""The errors the library raises. Every one derives from :class:`PersonasWarehouseError`.

Each message says what is wrong and what to do about it. Errors about bad input also derive
from :class:`ValueError`, so code written against the standard library keeps working.
"""

from __future__ import annotations

__all__ = [
    "ColumnCollisionError",
    "ColumnLimitError",
    "InvalidEventError",
    "InvalidSpaceError",
    "InvalidTimestampError",
    "MigrationError",
    "PersonasWarehouseError",
    "SpaceFileError",
    "SyncInProgressError",
    "UnknownDialectError",
    "UnsupportedValueError",
    "WarehouseError",
]


class PersonasWarehouseError(Exception):
    """Root of every error raised by personas_warehouse."""


class InvalidSpaceError(PersonasWarehouseError, ValueError):
    """A Space, trait or audience definition is invalid (bad key, duplicate, bad option)."""


class ColumnCollisionError(InvalidSpaceError):
    """Two keys would be stored in the same warehouse column."""


class SpaceFileError(InvalidSpaceError):
    """A space file (TOML) is malformed; the message names the file and the key."""


class InvalidEventError(PersonasWarehouseError, ValueError):
    """An identify event or one of its values does not fit the Space."""


class UnsupportedValueError(InvalidEventError):
    """A value no warehouse can store losslessly (NaN, infinity, NUL byte, int past 64 bits)."""


class InvalidTimestampError(PersonasWarehouseError, ValueError):
    """A timestamp is naive (has no time zone) or is not a datetime at all."""


class UnknownDialectError(PersonasWarehouseError, ValueError):
    """The dialect name is not one sqlglot knows."""


class ColumnLimitError(PersonasWarehouseError, ValueError):
    """The tables would have more columns than the warehouse allows."""


class MigrationError(PersonasWarehouseError, ValueError):
    """A schema change cannot be made without losing data (narrowing, removal)."""


class WarehouseError(PersonasWarehouseError):
    """The warehouse refused or failed a statement; the original error is chained."""


class SyncInProgressError(WarehouseError):
    """Another sync of the same space holds the sync lock."""
