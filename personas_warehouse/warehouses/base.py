"""What a warehouse can do, as flags. Shared code asks the flag, never the warehouse's name.

A warehouse is a subclass of :class:`Capabilities` that changes only what differs from the
conservative defaults here (the profile every unlisted sqlglot dialect gets).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, cast

from personas_warehouse.model import TraitType
from personas_warehouse.naming import IdentifierUnit, identifier_length

__all__ = [
    "AlterType",
    "Capabilities",
    "IdentifierUnit",
    "NumberText",
    "PrimaryKey",
    "RowsRelation",
    "TimestampText",
    "Upsert",
]


class Upsert(enum.Enum):
    """How a warehouse replaces a row that may already exist."""

    MERGE = "merge"
    """``MERGE INTO ... WHEN MATCHED ... WHEN NOT MATCHED``."""
    ON_CONFLICT = "on_conflict"
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` (Postgres, SQLite, DuckDB)."""
    ON_DUPLICATE_KEY = "on_duplicate_key"
    """``INSERT ... ON DUPLICATE KEY UPDATE`` (MySQL, MariaDB)."""
    DELETE_INSERT = "delete_insert"
    """``DELETE`` the keys, then ``INSERT``, in one transaction: the fallback written once."""
    REPLACING_MERGE_TREE = "replacing_merge_tree"
    """Insert a new version; a ReplacingMergeTree keeps the latest (read with ``FINAL``)."""
    REBUILD = "rebuild"
    """No row-level DML: rebuild the table (``INSERT OVERWRITE``) from the as-of query."""


class AlterType(enum.Enum):
    """How a column's type is widened in place."""

    ALTER_COLUMN_TYPE = "alter_column_type"
    """``ALTER TABLE t ALTER COLUMN c [SET DATA] TYPE new`` (with a conversion where needed)."""
    MODIFY_COLUMN = "modify_column"
    """``ALTER TABLE t MODIFY [COLUMN] c new`` (MySQL, ClickHouse)."""
    COPY_RENAME = "copy_rename"
    """Add a new column, copy the values converted, drop the old, rename the new (Redshift)."""
    REBUILD_TABLE = "rebuild_table"
    """Recreate the table with the new type and copy the rows (SQLite, Spark on parquet)."""


class NumberText(enum.Enum):
    """How a double becomes text that reads back as the same double (NUMBER -> STRING)."""

    CAST = "cast"
    """``CAST(x AS <text>)`` already gives the shortest text that round-trips."""
    SHORTEST_OR_17_DIGITS = "shortest_or_17_digits"
    """``CAST`` keeps 15 digits (SQLite): use it when it round-trips, else ``printf('%!.17g')``."""
    CONVERT_STYLE_3 = "convert_style_3"
    """``CONVERT(<text>, x, 3)``: 17 significant digits (T-SQL, whose CAST keeps 6)."""


class TimestampText(enum.Enum):
    """How an instant becomes ISO-8601 UTC text, ``YYYY-MM-DD HH:MM:SS.ffffff+00:00``."""

    FORMAT_AT_UTC = "format_at_utc"
    """Format the value shifted to UTC (``AT TIME ZONE 'UTC'``); the column holds an instant."""
    FORMAT = "format"
    """Format the value as it is: the column holds UTC wall time (or the session is UTC)."""
    FORMAT_IN_ZONE = "format_in_zone"
    """A format function that takes the zone itself (BigQuery ``FORMAT_TIMESTAMP``)."""
    CAST_WITH_OFFSET = "cast_with_offset"
    """``CAST`` gives fixed-width UTC text already; append ``+00:00`` (ClickHouse)."""
    TEXT = "text"
    """The column already holds that text (SQLite): nothing to convert."""


class RowsRelation(enum.Enum):
    """How a statement writes literal rows as a relation with named columns."""

    VALUES = "values"
    """``(VALUES (...), ...) AS t(a, b)``, or what sqlglot writes for it in the dialect (a
    ``UNION ALL`` of ``SELECT``s in MySQL, an ``UNNEST`` of structs in BigQuery)."""
    CTE = "cte"
    """``WITH t(a, b) AS (VALUES ...)``: a ``VALUES`` list in ``FROM`` cannot name its
    columns (SQLite)."""
    ARRAY_JOIN = "array_join"
    """``SELECT tupleElement(r, 1) AS a, ... FROM (SELECT arrayJoin([(...), ...]) AS r)``: one
    array literal (ClickHouse analyses a ``UNION ALL`` of a thousand ``SELECT``s slowly)."""


class PrimaryKey(enum.Enum):
    """How a table declares its key column (``id``)."""

    DECLARED = "declared"
    """``PRIMARY KEY (id)``: enforced where the engine enforces keys (ON CONFLICT needs it)."""
    NOT_ENFORCED = "not_enforced"
    """``PRIMARY KEY (id) NOT ENFORCED``: informational only (BigQuery)."""
    NONE = "none"
    """No key constraint at all (Spark on parquet, Trino, Synapse, ClickHouse's ORDER BY)."""


_STANDARD_TYPES: Mapping[TraitType, str] = MappingProxyType(
    {
        TraitType.BOOLEAN: "BOOLEAN",
        TraitType.INTEGER: "BIGINT",
        TraitType.NUMBER: "DOUBLE PRECISION",
        TraitType.STRING: "TEXT",
        TraitType.TIMESTAMP: "TIMESTAMPTZ",
        TraitType.JSON: "TEXT",
    }
)


class Capabilities:
    """The conservative profile: what any SQL warehouse is assumed to do.

    Unlisted sqlglot dialects get this profile as it is (with their own ``dialect``); it is
    documented as unverified.
    """

    name: ClassVar[str] = "generic"
    """Registry name of the warehouse."""
    dialect: ClassVar[str] = ""
    """The sqlglot dialect that renders its SQL."""
    verified_by_execution: ClassVar[bool] = False
    """Whether the test suite runs the generated SQL on a real engine of this kind."""
    identifier_limit: ClassVar[int | None] = 63
    """Longest identifier, in ``identifier_unit``; ``None`` when there is no practical limit."""
    identifier_unit: ClassVar[IdentifierUnit] = IdentifierUnit.BYTES
    """What ``identifier_limit`` counts."""
    identifier_must_start_with_letter: ClassVar[bool] = False
    """A column must start with a letter or ``_``, even quoted (BigQuery)."""
    max_columns: ClassVar[int | None] = 1000
    """Most columns a table may have; ``None`` when there is no practical limit."""
    upsert: ClassVar[Upsert] = Upsert.DELETE_INSERT
    """How rows of ``users`` are replaced."""
    staged_upsert: ClassVar[Upsert | None] = None
    """How the staged bulk path (``staged_insert_statements``) writes ``identifies`` rows,
    where it differs from ``upsert``: PostgreSQL's ``ON CONFLICT`` pays a speculative
    insertion per row, so a million staged rows go in twice as fast by delete-then-insert
    (see docs/sql.md). ``users`` rows are always written by ``upsert``."""
    columns_per_add_column: ClassVar[int | None] = 1
    """Columns one ``ALTER TABLE ... ADD`` may add; ``None`` for any number."""
    add_column_if_not_exists: ClassVar[bool] = False
    """``ALTER TABLE ... ADD COLUMN IF NOT EXISTS`` works."""
    create_table_if_not_exists: ClassVar[bool] = True
    """``CREATE TABLE IF NOT EXISTS`` works."""
    schemas: ClassVar[bool] = True
    """``CREATE SCHEMA`` exists and tables are schema-qualified."""
    schema_name_limit: ClassVar[int | None] = None
    """Longest schema name (in ``identifier_unit``) where shorter than ``identifier_limit``
    (Spark: a schema is the directory ``<name>.db``, and file names stop at 255 bytes)."""
    bmp_identifiers: ClassVar[bool] = False
    """Identifiers may hold only characters of the Basic Multilingual Plane (MySQL keeps its
    catalog in 3-byte utf8: no emoji in a schema name)."""
    ids_keep_trailing_spaces: ClassVar[bool] = True
    """Ids that differ only by trailing spaces (``m1``, ``m1 ``) are distinct keys. False where
    the id columns compare with PAD SPACE (MySQL): such ids are refused, never merged."""
    word_schema_names: ClassVar[bool] = False
    """Schema names may hold only ASCII letters, ``_`` and (not first) digits (Spark's catalog)."""
    transactions: ClassVar[bool] = True
    """Multi-statement transactions exist (``BEGIN`` ... ``COMMIT``)."""
    transactional_ddl: ClassVar[bool] = False
    """DDL can roll back with the transaction it ran in."""
    alter_type: ClassVar[AlterType] = AlterType.COPY_RENAME
    """How a trait's column is widened to a new type."""
    alter_type_using: ClassVar[bool] = False
    """``ALTER COLUMN ... TYPE`` takes ``USING <expression>``, so every widening is in place."""
    in_place_widenings: ClassVar[frozenset[tuple[TraitType, TraitType]]] = frozenset(
        {(TraitType.INTEGER, TraitType.NUMBER), (TraitType.INTEGER, TraitType.STRING)}
    )
    """Widenings an in-place ``alter_type`` (without USING) converts exactly by itself."""
    alter_type_fallback: ClassVar[AlterType] = AlterType.COPY_RENAME
    """How a widening that the in-place ``alter_type`` cannot make exactly is made."""
    drop_column: ClassVar[bool] = True
    """``ALTER TABLE ... DROP COLUMN`` works (else the table is rebuilt without the column)."""
    number_text: ClassVar[NumberText] = NumberText.CAST
    """How a NUMBER (double) becomes text without losing a digit."""
    timestamp_text: ClassVar[TimestampText] = TimestampText.FORMAT_AT_UTC
    """How a TIMESTAMP becomes ISO-8601 UTC text."""
    binary_collation: ClassVar[str | None] = None
    """Collation that orders text by code point, where the column's default may not
    (rendered quoted: PostgreSQL's ``COLLATE "C"``)."""
    binary_text_type: ClassVar[str | None] = None
    """Type text is cast to so it compares byte by byte (UTF-8 bytes order by code point),
    where no collation both orders by code point and keeps trailing spaces (MySQL's
    ``BINARY``); takes precedence over ``binary_collation``."""
    key_collation: ClassVar[str | None] = None
    """Collation of the id columns (``identifies.id``, ``user_id``, ``users.id``), where the
    server's default would take ids differing in case or accents as equal (MySQL)."""
    filtered_arg_min: ClassVar[bool] = False
    """``ARG_MIN(struct, integer) FILTER (WHERE ...)`` works: the one-pass as-of plan (see
    :func:`personas_warehouse.sql.query.filtered_arg_min`)."""
    delete_join: ClassVar[bool] = False
    """Rows found by a query are deleted with ``DELETE t FROM t JOIN (query) ...`` instead of
    ``DELETE FROM t WHERE id IN (query)``, which MariaDB (before 11.1) runs once per row of
    ``t``: a scan of the whole table per load."""
    rows_relation: ClassVar[RowsRelation] = RowsRelation.VALUES
    """How literal rows become a relation with named columns."""
    primary_key: ClassVar[PrimaryKey] = PrimaryKey.DECLARED
    """How ``id`` is declared the key of each table."""
    table_format: ClassVar[str | None] = None
    """``CREATE TABLE ... USING <format>`` (Spark: ``PARQUET``); ``None`` for the default."""
    rename_column_procedure: ClassVar[bool] = False
    """Columns are renamed with ``EXEC sp_rename`` instead of ``ALTER TABLE RENAME COLUMN``."""
    max_statement_bytes: ClassVar[int] = 256 * 1024
    """Longest statement text sent at once; larger batches are split."""
    timezone_type: ClassVar[bool] = True
    """Has a timestamp type that holds an instant; without one timestamps are ISO-8601 text."""
    column_types: ClassVar[Mapping[TraitType, str]] = _STANDARD_TYPES
    """Column type of each trait type, in the warehouse's own SQL."""
    boolean_type: ClassVar[str] = "BOOLEAN"
    """Column type of audience columns."""
    string_type: ClassVar[str] = "TEXT"
    """Column type of free text (user ids, message ids when not a key)."""
    key_string_type: ClassVar[str] = "VARCHAR(1024)"
    """Column type of a text column that is a primary key (ids)."""
    timestamp_type: ClassVar[str] = "TIMESTAMPTZ"
    """Column type of system timestamps (``timestamp``, ``received_at``, ``uuid_ts``)."""

    def __init__(self, dialect: str | None = None) -> None:
        if dialect is not None:
            self._dialect = dialect

    @property
    def sqlglot_dialect(self) -> str:
        """The sqlglot dialect name this profile renders with."""
        return getattr(self, "_dialect", self.dialect)

    def with_upsert(self, upsert: Upsert) -> Capabilities:
        """These capabilities with rows replaced by ``upsert`` (on every path)."""
        if upsert is self.upsert and self.staged_upsert in (None, upsert):
            return self
        name = f"{type(self).__name__}{upsert.name.title().replace('_', '')}"
        return self.with_flags(name, upsert=upsert, staged_upsert=None)

    def with_flags(self, name: str | None = None, /, **flags: Any) -> Capabilities:
        """These capabilities with some flags set otherwise (to force a plan in a test or a
        benchmark, or to describe a warehouse that differs from its profile): an instance of
        a subclass named ``name`` (default: the class name with ``Custom``).

        >>> from personas_warehouse.warehouses import capabilities
        >>> duckdb = capabilities("duckdb")
        >>> portable = duckdb.with_flags(filtered_arg_min=False)
        >>> duckdb.filtered_arg_min, portable.filtered_arg_min, portable.dialect
        (True, False, 'duckdb')
        """
        unknown = sorted(flag for flag in flags if not hasattr(type(self), flag))
        if unknown:  # as Python reports an unexpected keyword argument
            raise TypeError(f"with_flags() got unknown capability flags {unknown}")
        derived = type(name or f"{type(self).__name__}Custom", (type(self),), flags)
        return cast("Capabilities", derived(getattr(self, "_dialect", None)))

    def identifier_length(self, name: str) -> int:
        """The length of ``name`` as this warehouse counts it."""
        return identifier_length(name, self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} dialect={self.sqlglot_dialect!r}>"
