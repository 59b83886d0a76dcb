"""DDL: create the schema and tables of a Space, and evolve them as the Space changes.

Every statement is a sqlglot tree rendered by :func:`personas_warehouse.sql.render.render`
(every identifier quoted). Shared code asks the warehouse's flags, never its name.

>>> from personas_warehouse.model import Space, Audience, ComputedTrait, TraitType
>>> space = Space(traits=[ComputedTrait("ltv", TraitType.NUMBER)], audiences=[Audience("vip")])
>>> for sql in create_statements(space, "postgres")[:2]:
...     print(sql)
CREATE SCHEMA IF NOT EXISTS "personas_default"
CREATE TABLE IF NOT EXISTS "personas_default"."identifies" ("id" TEXT NOT NULL, \
"user_id" TEXT NOT NULL, "timestamp" TIMESTAMPTZ NOT NULL, "received_at" TIMESTAMPTZ NOT NULL, \
"uuid_ts" TIMESTAMPTZ, "cleared_keys" TEXT, "ltv" DOUBLE PRECISION, "vip" BOOLEAN, \
PRIMARY KEY ("id"))

``migrate_statements`` assumes ``old_space`` is what the warehouse holds now (a runner that is
not sure reads the catalog first): ``ADD COLUMN`` has no ``IF NOT EXISTS`` on SQLite, MySQL,
T-SQL, Redshift, Spark and Databricks (``add_column_if_not_exists``), so re-running a migration
there fails on the first column that already exists instead of doing nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

import attrs
from sqlglot import exp

from personas_warehouse.errors import ColumnLimitError, InvalidSpaceError, MigrationError
from personas_warehouse.model import Space, TraitType
from personas_warehouse.naming import check_identifier, column_names, key_hash
from personas_warehouse.sql.render import render, render_all
from personas_warehouse.sql.tables import (
    IDENTIFIES,
    SYNC_RUNS,
    USERS,
    Column,
    identifies_columns,
    sync_runs_columns,
    table,
    users_columns,
)
from personas_warehouse.warehouses import (
    AlterType,
    Capabilities,
    NumberText,
    PrimaryKey,
    TimestampText,
    Upsert,
    capabilities,
)

__all__ = [
    "REBUILD_SUFFIX",
    "TIMESTAMP_TEXT_FORMAT",
    "WIDENINGS",
    "MigrationStep",
    "check_column_limit",
    "check_schema_name",
    "column_def",
    "convert_expression",
    "create_statements",
    "create_trees",
    "data_type",
    "drop_column_statements",
    "migrate_statements",
    "migration_steps",
    "synced_tables",
    "widening_check_queries",
]

_WORD: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def data_type(type_name: str, caps: Capabilities) -> exp.DataType:
    """A column type written in the warehouse's own SQL, as a sqlglot tree."""
    return exp.DataType.build(type_name, dialect=caps.sqlglot_dialect)


def synced_tables(space: Space, dialect: str | Capabilities) -> dict[str, list[Column]]:
    """The tables ``space`` syncs, with their columns, in creation order.

    Selective sync: ``users`` only when ``space.sync_users``, ``identifies`` only when
    ``space.sync_identifies``; ``sync_runs`` always (the runner records every sync).

    >>> from personas_warehouse.model import Space
    >>> list(synced_tables(Space(sync_identifies=False), "duckdb"))
    ['users', 'sync_runs']
    """
    caps = capabilities(dialect)
    tables: dict[str, list[Column]] = {}
    if space.sync_identifies:
        tables[IDENTIFIES] = identifies_columns(space, caps)
    if space.sync_users:
        tables[USERS] = users_columns(space, caps)
    tables[SYNC_RUNS] = sync_runs_columns(caps)
    return tables


def check_column_limit(space: Space, dialect: str | Capabilities) -> None:
    """Raise :class:`ColumnLimitError` when a table of ``space`` has more columns than allowed.

    >>> from personas_warehouse.model import Space, Audience
    >>> check_column_limit(Space(audiences=[Audience(f"a{i}") for i in range(1600)]), "mysql")
    Traceback (most recent call last):
    ...
    personas_warehouse.errors.ColumnLimitError: the identifies table would have 1606 columns \
(1600 synced keys); mysql allows 1017 per table: exclude 589 keys from sync \
(Space.excluded) or split them over several spaces
    """
    caps = capabilities(dialect)
    limit = caps.max_columns
    if limit is None:
        return
    for name, columns in synced_tables(space, caps).items():
        if len(columns) > limit:
            raise ColumnLimitError(
                f"the {name} table would have {len(columns)} columns ({len(space.keys)} synced "
                f"keys); {caps.sqlglot_dialect} allows {limit} per table: exclude "
                f"{len(columns) - limit} keys from sync (Space.excluded) or split them over "
                "several spaces"
            )


def column_def(column: Column, caps: Capabilities) -> exp.ColumnDef:
    """The definition of one column (``NOT NULL`` where the column requires a value)."""
    constraints = []
    if not column.nullable:
        constraints.append(exp.ColumnConstraint(kind=exp.NotNullColumnConstraint()))
    if column.collation:  # after NOT NULL: MySQL and MariaDB take it as a column attribute
        collate = exp.CollateColumnConstraint(this=exp.to_identifier(column.collation))
        constraints.append(exp.ColumnConstraint(kind=collate))
    return exp.ColumnDef(
        this=exp.to_identifier(column.name),
        kind=data_type(column.type, caps),
        constraints=constraints or None,
    )


def _create_table(
    space: Space, name: str, columns: Sequence[Column], caps: Capabilities
) -> exp.Create:
    definitions: list[exp.Expression] = [column_def(column, caps) for column in columns]
    keys = [exp.to_identifier(c.name) for c in columns if c.primary_key]
    if keys and caps.primary_key is not PrimaryKey.NONE:
        options = ["NOT ENFORCED"] if caps.primary_key is PrimaryKey.NOT_ENFORCED else None
        definitions.append(exp.PrimaryKey(expressions=keys, options=options))
    properties: list[exp.Expression] = []
    if caps.table_format is not None:
        properties.append(exp.FileFormatProperty(this=exp.var(caps.table_format)))
    if caps.upsert is Upsert.REPLACING_MERGE_TREE:
        properties.append(
            exp.EngineProperty(
                this=exp.Anonymous(this="ReplacingMergeTree", expressions=[exp.column("version")])
            )
        )
        properties.append(exp.Order(expressions=[exp.Ordered(this=exp.column(k)) for k in keys]))
    return exp.Create(
        this=exp.Schema(this=table(space, name), expressions=definitions),
        kind="TABLE",
        exists=caps.create_table_if_not_exists or None,
        properties=exp.Properties(expressions=properties) if properties else None,
    )


def create_schema(space: Space, caps: Capabilities) -> exp.Create:
    """``CREATE SCHEMA IF NOT EXISTS`` for the space's schema."""
    return exp.Create(
        this=exp.Table(db=exp.to_identifier(space.schema)), kind="SCHEMA", exists=True
    )


def check_schema_name(space: Space, dialect: str | Capabilities) -> str:
    """Check the space's schema name fits the warehouse; returns it unchanged.

    >>> from personas_warehouse.model import Space
    >>> check_schema_name(Space(schema="my schema"), "spark")
    Traceback (most recent call last):
    ...
    personas_warehouse.errors.InvalidSpaceError: schema name 'my schema' is not valid on spark, \
which allows only ASCII letters, _ and digits (not first) in schema names: choose a name like \
'my_schema'
    """
    caps = capabilities(dialect)
    name = check_identifier(space.schema, caps, "schema name")
    if caps.bmp_identifiers and any(ord(char) > 0xFFFF for char in name):
        raise InvalidSpaceError(
            f"schema name {name!r} holds characters beyond U+FFFF (emoji, rare CJK), which "
            f"{caps.sqlglot_dialect} does not allow in identifiers: choose a name without them"
        )
    limit = caps.schema_name_limit
    if limit is not None and caps.identifier_length(name) > limit:
        raise InvalidSpaceError(
            f"schema name {name!r} is {caps.identifier_length(name)} "
            f"{caps.identifier_unit.value} long; {caps.sqlglot_dialect} allows {limit} for a "
            "schema (it becomes a directory): choose a shorter name"
        )
    if caps.word_schema_names and not _WORD.fullmatch(name):
        suggestion = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "personas_default"
        if suggestion[0].isdigit():
            suggestion = "s_" + suggestion
        raise InvalidSpaceError(
            f"schema name {name!r} is not valid on {caps.sqlglot_dialect}, which allows only "
            f"ASCII letters, _ and digits (not first) in schema names: choose a name like "
            f"{suggestion!r}"
        )
    return name


def create_trees(space: Space, dialect: str | Capabilities) -> list[exp.Create]:
    """The trees behind :func:`create_statements` (for callers that compose statements)."""
    caps = capabilities(dialect)
    check_schema_name(space, caps)
    check_column_limit(space, caps)
    trees: list[exp.Create] = []
    if caps.schemas:
        trees.append(create_schema(space, caps))
    for name, columns in synced_tables(space, caps).items():
        trees.append(_create_table(space, name, columns, caps))
    return trees


def create_statements(space: Space, dialect: str | Capabilities) -> list[str]:
    """The schema and the tables of ``space``, idempotent: running them again changes nothing.

    No ``CREATE SCHEMA`` where the warehouse has no schemas (SQLite: the runner attaches a
    database named like the schema). Column limits are checked before any SQL is made.

    >>> from personas_warehouse.model import Space, Audience
    >>> create_statements(Space(audiences=[Audience("vip")], sync_identifies=False), "sqlite")[0]
    'CREATE TABLE IF NOT EXISTS "personas_default"."users" ("id" TEXT NOT NULL PRIMARY KEY, \
"vip" INTEGER, "timestamp" TEXT, "received_at" TEXT, "uuid_ts" TEXT)'
    """
    caps = capabilities(dialect)
    return render_all(list(create_trees(space, caps)), caps)


# --------------------------------------------------------------------------------------------
# Schema evolution
# --------------------------------------------------------------------------------------------

WIDENINGS: Final = frozenset(
    {
        (TraitType.INTEGER, TraitType.NUMBER),
        (TraitType.INTEGER, TraitType.STRING),
        (TraitType.NUMBER, TraitType.STRING),
        (TraitType.BOOLEAN, TraitType.STRING),
        (TraitType.TIMESTAMP, TraitType.STRING),
    }
)
"""The type changes a migration makes without losing a value: (from, to)."""

TIMESTAMP_TEXT_FORMAT: Final = "%Y-%m-%d %H:%M:%S.%f+00:00"
"""A TIMESTAMP widened to STRING reads ``2024-05-01 10:34:56.000000+00:00`` (ISO-8601, UTC).

It is the text SQLite already stores (``runner.connections.timestamp_text``), so every
warehouse ends with the same strings.
"""

_EXACT_LIMIT: Final = 2**53
"""Every integer up to this (in absolute value) is exact as a double."""

REBUILD_SUFFIX: Final = "__pw_rebuild"
"""Suffix of the scratch table a table rebuild copies the rows through."""


@attrs.frozen(slots=True)
class MigrationStep:
    """Statements that belong together: ``atomic`` ones run in one transaction where DDL can.

    :func:`migrate_statements` writes ``BEGIN`` / ``COMMIT`` around atomic steps where the
    warehouse's DDL is transactional; a runner that manages transactions itself uses
    :func:`migration_steps` and opens one per atomic step.
    """

    description: str
    statements: tuple[str, ...]
    atomic: bool = False


def _key_kind(space: Space, key: str) -> TraitType | None:
    """A trait's type, or ``None`` for an audience."""
    return None if space.is_audience(key) else space.trait_types[key]


def _describe(kind: TraitType | None) -> str:
    return "an audience" if kind is None else f"a {kind.name} trait"


def _check_changes(
    old: Space, new: Space, drop_removed: bool
) -> dict[str, tuple[TraitType, TraitType]]:
    """The widened keys (key -> (from, to)); raise for any change that would lose data."""
    if old.schema != new.schema:
        raise MigrationError(
            f"the schema cannot be renamed by a migration ({old.schema!r} -> {new.schema!r}): "
            f"keep schema={old.schema!r}, or create the new schema with create_statements() "
            "and copy the tables yourself"
        )
    removed = [key for key in old.keys if key not in new.keys]
    if removed and not drop_removed:
        raise MigrationError(
            f"keys {removed} are synced now but not in the new space; their columns hold data. "
            "Keep them in the space, or drop their columns explicitly with "
            "drop_removed=True (or drop_column_statements()), which deletes the data"
        )
    widened: dict[str, tuple[TraitType, TraitType]] = {}
    for key in new.keys:
        if key not in old.keys:
            continue
        before, after = _key_kind(old, key), _key_kind(new, key)
        if before == after:
            continue
        if before is None or after is None:
            raise MigrationError(
                f"key {key!r} changes from {_describe(before)} to {_describe(after)}; a key "
                "cannot change kind: give the new one its own key"
            )
        if (before, after) not in WIDENINGS:
            safe = ", ".join(f"{a.name} -> {b.name}" for a, b in sorted(WIDENINGS, key=str))
            raise MigrationError(
                f"trait {key!r} cannot change from {before.name} to {after.name}: that would "
                f"lose or reinterpret values (only {safe} are safe). Add a new trait key with "
                f"the new type, or keep {before.name}"
            )
        widened[key] = (before, after)
    return widened


def _number_text(
    column: exp.Expression, target: exp.DataType, caps: Capabilities
) -> exp.Expression:
    if caps.number_text is NumberText.CONVERT_STYLE_3:
        return exp.Convert(this=target, expression=column, style=exp.Literal.number(3))
    text = exp.cast(column.copy(), target)
    if caps.number_text is NumberText.SHORTEST_OR_17_DIGITS:
        number = data_type(caps.column_types[TraitType.NUMBER], caps)
        exact = exp.EQ(this=exp.cast(text.copy(), number), expression=column.copy())
        seventeen = exp.Anonymous(
            this="printf", expressions=[exp.Literal.string("%!.17g"), column.copy()]
        )
        return exp.Case(
            ifs=[
                exp.If(this=exp.Is(this=column.copy(), expression=exp.Null()), true=exp.Null()),
                exp.If(this=exact, true=text),
            ],
            default=seventeen,
        )
    return text


def _timestamp_text(
    column: exp.Expression, target: exp.DataType, caps: Capabilities
) -> exp.Expression:
    fmt = exp.Literal.string(TIMESTAMP_TEXT_FORMAT)
    utc = exp.Literal.string("UTC")
    how = caps.timestamp_text
    if how is TimestampText.TEXT:
        return column
    if how is TimestampText.CAST_WITH_OFFSET:
        return exp.Concat(expressions=[exp.cast(column, target), exp.Literal.string("+00:00")])
    if how is TimestampText.FORMAT_IN_ZONE:
        return exp.TimeToStr(this=exp.TsOrDsToTimestamp(this=column), format=fmt, zone=utc)
    if how is TimestampText.FORMAT:
        return exp.TimeToStr(this=column, format=fmt)
    return exp.TimeToStr(this=exp.AtTimeZone(this=column, zone=utc), format=fmt)


def convert_expression(
    column: exp.Expression, before: TraitType, after: TraitType, dialect: str | Capabilities
) -> exp.Expression:
    """The value of ``column`` (a ``before`` trait) as an ``after`` trait, without loss.

    >>> from sqlglot import exp
    >>> from personas_warehouse.sql.render import render
    >>> render(convert_expression(exp.column("b"), TraitType.BOOLEAN, TraitType.STRING,
    ...                           "postgres"), "postgres")
    'CASE WHEN "b" THEN \\'true\\' WHEN NOT "b" THEN \\'false\\' END'
    """
    caps = capabilities(dialect)
    target = data_type(caps.column_types[after], caps)
    if (before, after) not in WIDENINGS:
        raise MigrationError(f"{before.name} -> {after.name} is not a safe widening")
    if before is TraitType.BOOLEAN:
        return exp.Case(
            ifs=[
                exp.If(this=column.copy(), true=exp.Literal.string("true")),
                exp.If(this=exp.not_(column.copy()), true=exp.Literal.string("false")),
            ]
        )
    if before is TraitType.TIMESTAMP:
        return _timestamp_text(column, target, caps)
    if before is TraitType.NUMBER:
        return _number_text(column, target, caps)
    return exp.cast(column, target)


def _strategy(caps: Capabilities, before: TraitType, after: TraitType) -> AlterType:
    """How one widening is made on this warehouse."""
    if caps.alter_type is AlterType.ALTER_COLUMN_TYPE and caps.alter_type_using:
        return caps.alter_type
    in_place = caps.alter_type in (AlterType.ALTER_COLUMN_TYPE, AlterType.MODIFY_COLUMN)
    if in_place and (before, after) not in caps.in_place_widenings:
        return caps.alter_type_fallback
    return caps.alter_type


def _alter(space: Space, name: str, *actions: exp.Expression) -> exp.Alter:
    return exp.Alter(this=table(space, name), kind="TABLE", actions=list(actions))


def _add_columns(
    space: Space, name: str, columns: Sequence[Column], caps: Capabilities
) -> list[exp.Alter]:
    definitions = []
    for column in columns:
        definition = column_def(column, caps)
        if caps.add_column_if_not_exists:
            definition.set("exists", True)
        definitions.append(definition)
    size = caps.columns_per_add_column or len(definitions) or 1
    return [
        _alter(space, name, *definitions[start : start + size])
        for start in range(0, len(definitions), size)
    ]


def _drop_column(space: Space, name: str, column: str) -> exp.Alter:
    return _alter(space, name, exp.Drop(tables=[exp.column(column)], kind="COLUMN"))


def _rename_column(
    space: Space, name: str, old: str, new: str, caps: Capabilities
) -> exp.Expression:
    if caps.rename_column_procedure:

        def bracket(part: str) -> str:
            return "[" + part.replace("]", "]]") + "]"

        where = ".".join(bracket(part) for part in (space.schema, name, old))
        return exp.Execute(
            this=exp.table_("sp_rename"),
            expressions=[
                exp.Literal.string(where),
                exp.Literal.string(new),
                exp.Literal.string("COLUMN"),
            ],
        )
    return _alter(space, name, exp.RenameColumn(this=exp.column(old), to=exp.column(new)))


def _copy_rename(
    space: Space,
    name: str,
    *,
    old: Column,
    new: Column,
    before: TraitType,
    after: TraitType,
    caps: Capabilities,
) -> list[exp.Expression]:
    scratch = Column(f"pw_tmp_{key_hash(old.name)}", new.type, key=new.key)
    value = convert_expression(exp.column(old.name), before, after, caps)
    update = exp.update(table(space, name), {scratch.name: value}, where=exp.true())
    return [
        *_add_columns(space, name, [scratch], caps),
        update,
        _drop_column(space, name, old.name),
        _rename_column(space, name, scratch.name, old.name, caps),
    ]


def _rebuild(
    space: Space,
    name: str,
    *,
    old_columns: Sequence[Column],
    target: Sequence[Column],
    widened: dict[str, tuple[TraitType, TraitType]],
    caps: Capabilities,
) -> list[exp.Expression]:
    """Copy the rows through a scratch table into the table recreated with ``target`` columns.

    Only CREATE, INSERT ... SELECT and DROP are used (no table rename, which ClickHouse writes
    differently), so it works on every warehouse; the scratch table keeps the rows if a
    non-transactional warehouse fails half-way.
    """
    scratch = name + REBUILD_SUFFIX
    kept = {c.name for c in old_columns}
    carried = [c for c in target if c.name in kept]
    values: list[exp.Expression] = []
    for column in carried:
        value: exp.Expression = exp.column(column.name)
        if column.key in widened and _type_changed(old_columns, column):
            before, after = widened[column.key]
            value = convert_expression(value, before, after, caps)
        values.append(value)
    names = [exp.to_identifier(c.name) for c in carried]

    def copy(source: str, into: str, select: list[exp.Expression]) -> exp.Insert:
        query = exp.select(*select).from_(table(space, source))
        return exp.Insert(
            this=exp.Schema(this=table(space, into), expressions=[n.copy() for n in names]),
            expression=query,
        )

    drop = exp.Drop(tables=[table(space, scratch)], kind="TABLE", exists=True)
    return [
        drop,
        _create_table(space, scratch, carried, caps),
        copy(name, scratch, values),
        exp.Drop(tables=[table(space, name)], kind="TABLE"),
        _create_table(space, name, target, caps),
        copy(scratch, name, [exp.column(c.name) for c in carried]),
        drop.copy(),
    ]


def _type_changed(old_columns: Sequence[Column], column: Column) -> bool:
    """Whether ``column`` had another physical type before."""
    return any(c.name == column.name and c.type != column.type for c in old_columns)


def _table_steps(
    space: Space,
    name: str,
    *,
    old_columns: Sequence[Column],
    new_columns: Sequence[Column],
    widened: dict[str, tuple[TraitType, TraitType]],
    caps: Capabilities,
) -> list[tuple[str, list[exp.Expression], bool]]:
    old_by_name = {c.name: c for c in old_columns}
    new_names = {c.name for c in new_columns}
    added = [c for c in new_columns if c.name not in old_by_name]
    removed = [c for c in old_columns if c.name not in new_names]
    changed = [
        (old_by_name[c.name], c, *widened[c.key])
        for c in new_columns
        if c.key in widened and c.name in old_by_name and old_by_name[c.name].type != c.type
    ]
    strategies = {_strategy(caps, before, after) for _, _, before, after in changed}
    if AlterType.REBUILD_TABLE in strategies or (removed and not caps.drop_column):
        # Old columns keep their place (with their new types), new ones go last, as ADD does.
        new_by_name = {c.name: c for c in new_columns}
        target = [new_by_name[c.name] for c in old_columns if c.name in new_by_name]
        target += added
        what = (
            f"rebuild {name} ("
            + ", ".join(
                [f"widen {o.name}" for o, *_ in changed]
                + [f"add {c.name}" for c in added]
                + [f"drop {c.name}" for c in removed]
            )
            + ")"
        )
        return [
            (
                what,
                _rebuild(
                    space, name, old_columns=old_columns, target=target, widened=widened, caps=caps
                ),
                True,
            )
        ]
    steps: list[tuple[str, list[exp.Expression], bool]] = []
    if added:
        adds: list[exp.Expression] = list(_add_columns(space, name, added, caps))
        steps.append((f"add {len(added)} column(s) to {name}", adds, False))
    for old, new, before, after in changed:
        strategy = _strategy(caps, before, after)
        what = f"widen {name}.{old.name} from {before.name} to {after.name}"
        if strategy is AlterType.ALTER_COLUMN_TYPE:
            using = None
            if caps.alter_type_using:
                using = convert_expression(exp.column(old.name), before, after, caps)
            action: exp.Expression = exp.AlterColumn(
                this=exp.to_identifier(old.name), dtype=data_type(new.type, caps), using=using
            )
            steps.append((what, [_alter(space, name, action)], False))
        elif strategy is AlterType.MODIFY_COLUMN:
            action = exp.ModifyColumn(this=column_def(new, caps))
            steps.append((what, [_alter(space, name, action)], False))
        else:
            statements = _copy_rename(
                space, name, old=old, new=new, before=before, after=after, caps=caps
            )
            steps.append((what, statements, True))
    for column in removed:
        steps.append(
            (f"drop {name}.{column.name}", [_drop_column(space, name, column.name)], False)
        )
    return steps


def migration_steps(
    old_space: Space, new_space: Space, dialect: str | Capabilities, *, drop_removed: bool = False
) -> list[MigrationStep]:
    """The steps that turn the tables of ``old_space`` into those of ``new_space``.

    ``old_space`` must be what the warehouse holds now. New keys add columns to every synced
    table; a trait whose type changes along a safe widening (:data:`WIDENINGS`) is converted
    without losing a value, by the warehouse's own means (``alter_type``); a table newly synced
    is created. Raises :class:`MigrationError` for a narrowing, a key that changes kind, a schema
    rename, or a removed key (unless ``drop_removed=True``: its columns are dropped, data lost).
    A table no longer synced is left as it is.
    """
    caps = capabilities(dialect)
    widened = _check_changes(old_space, new_space, drop_removed)
    check_schema_name(new_space, caps)
    check_column_limit(new_space, caps)
    old_tables = synced_tables(old_space, caps)
    steps: list[MigrationStep] = []
    for name, columns in synced_tables(new_space, caps).items():
        if name not in old_tables:
            create = render(_create_table(new_space, name, columns, caps), caps)
            steps.append(MigrationStep(f"create {name}", (create,)))
            continue
        for what, trees, atomic in _table_steps(
            new_space,
            name,
            old_columns=old_tables[name],
            new_columns=columns,
            widened=widened,
            caps=caps,
        ):
            steps.append(MigrationStep(what, tuple(render_all(trees, caps)), atomic))
    return steps


def migrate_statements(
    old_space: Space, new_space: Space, dialect: str | Capabilities, *, drop_removed: bool = False
) -> list[str]:
    """The statements of :func:`migration_steps`, run one after the other.

    Atomic steps are wrapped in ``BEGIN`` / ``COMMIT`` where the warehouse's DDL is
    transactional (Redshift's add/copy/drop/rename, SQLite's rebuild), so run the list on a
    connection that is not already inside a transaction. Where ``ADD COLUMN`` has no
    ``IF NOT EXISTS`` the list is not idempotent: it assumes ``old_space`` is what the
    warehouse holds (a runner that is not sure reads the catalog first).

    >>> from personas_warehouse.model import Space, ComputedTrait, TraitType
    >>> old = Space(traits=[ComputedTrait("age", TraitType.INTEGER)])
    >>> new = Space(traits=[ComputedTrait("age", TraitType.NUMBER), ComputedTrait("city")])
    >>> for sql in migrate_statements(old, new, "postgres"):
    ...     print(sql)
    ALTER TABLE "personas_default"."identifies" ADD COLUMN IF NOT EXISTS "city" TEXT
    ALTER TABLE "personas_default"."identifies" ALTER COLUMN "age" SET DATA TYPE \
DOUBLE PRECISION USING CAST("age" AS DOUBLE PRECISION)
    ALTER TABLE "personas_default"."users" ADD COLUMN IF NOT EXISTS "city" TEXT
    ALTER TABLE "personas_default"."users" ALTER COLUMN "age" SET DATA TYPE \
DOUBLE PRECISION USING CAST("age" AS DOUBLE PRECISION)
    """
    caps = capabilities(dialect)
    wrap = caps.transactions and caps.transactional_ddl
    statements: list[str] = []
    for step in migration_steps(old_space, new_space, caps, drop_removed=drop_removed):
        if step.atomic and wrap and len(step.statements) > 1:
            statements.append(render(exp.Transaction(), caps))
            statements.extend(step.statements)
            statements.append(render(exp.Commit(), caps))
        else:
            statements.extend(step.statements)
    return statements


def widening_check_queries(
    old_space: Space, new_space: Space, dialect: str | Capabilities
) -> list[str]:
    """Queries a runner runs before a migration: each counts the values it would not keep.

    Only INTEGER -> NUMBER can lose anything: a double holds every integer up to 2**53 exactly
    (the range a NUMBER trait accepts), not beyond. A count above zero means: keep the trait
    INTEGER, or widen it to STRING, which keeps every digit.

    >>> from personas_warehouse.model import Space, ComputedTrait, TraitType
    >>> widening_check_queries(Space(traits=[ComputedTrait("n", TraitType.INTEGER)]),
    ...                        Space(traits=[ComputedTrait("n", TraitType.NUMBER)]), "duckdb")[1]
    'SELECT COUNT(*) FROM "personas_default"."users" WHERE "n" > 9007199254740992 OR \
"n" < -9007199254740992'
    """
    caps = capabilities(dialect)
    widened = _check_changes(old_space, new_space, drop_removed=True)
    lossy = [
        key for key, change in widened.items() if change == (TraitType.INTEGER, TraitType.NUMBER)
    ]
    if not lossy:
        return []
    names = column_names(new_space, caps)
    queries: list[str] = []
    for name in synced_tables(old_space, caps):
        if name == SYNC_RUNS or name not in synced_tables(new_space, caps):
            continue
        conditions: list[exp.Expression] = []
        for key in lossy:
            column = exp.column(names[key])
            conditions.append(exp.GT(this=column, expression=exp.Literal.number(_EXACT_LIMIT)))
            conditions.append(
                exp.LT(this=column.copy(), expression=exp.Literal.number(-_EXACT_LIMIT))
            )
        query = exp.select(exp.Count(this=exp.Star())).from_(table(new_space, name))
        queries.append(render(query.where(exp.or_(*conditions)), caps))
    return queries


def drop_column_statements(
    space: Space, keys: Sequence[str], dialect: str | Capabilities
) -> list[str]:
    """Drop the columns of ``keys`` (synced keys of ``space``) from every table: data is lost.

    The explicit, opt-in way to remove keys; the space without them is what remains.

    >>> from personas_warehouse.model import Space, Audience
    >>> drop_column_statements(Space(audiences=[Audience("vip")]), ["vip"], "duckdb")
    ['ALTER TABLE "personas_default"."identifies" DROP COLUMN "vip"', \
'ALTER TABLE "personas_default"."users" DROP COLUMN "vip"']
    """
    unknown = [key for key in keys if key not in space.keys]
    if unknown:
        raise MigrationError(
            f"keys {unknown} are not synced keys of this space; known keys: {list(space.keys)}"
        )
    drop = set(keys)
    remaining = attrs.evolve(
        space,
        traits=[t for t in space.traits if t.key not in drop],
        audiences=[a for a in space.audiences if a.key not in drop],
        excluded=space.excluded - drop,
    )
    return migrate_statements(space, remaining, dialect, drop_removed=True)
