"""Writing events: idempotent appends to ``identifies`` and the ``users`` rows they change.

:func:`insert_statements` turns identify events into statements that

1. bring the ``users`` rows of the users the write is about to take events from up to date
   (:func:`displaced_users_trees`: an earlier copy of a stored message under another user
   replaces the stored copy, and its user can no longer be found once it is gone);
2. write each event to ``identifies`` once per message id. Running them again, or loading
   overlapping batches, leaves one row per message id; a copy received *earlier* than the
   stored one takes its place (DESIGN.md's dedupe rule: earliest ``received_at``, then
   earliest ``timestamp``, then smallest ``user_id``);
3. recompute the ``users`` rows of the users in the batch from ``identifies`` with the as-of
   query (no upper time bound) and upsert them, so ``users`` always equals the
   reconstruction of every user with every event the table holds.

Events are sparse: a key absent from an event is NULL in ``identifies`` and never overwrites
anything, because ``users`` is recomputed from the log, not merged column by column. An
explicit trait clear is NULL too, and its column is listed in ``cleared_keys`` (``,col,``) so
the log tells the two apart.

How rows are replaced is chosen by the warehouse's :class:`~personas_warehouse.warehouses.Upsert`
flag, never by its name:

========================  ===============================================================
``MERGE``                 ``MERGE INTO ... USING (VALUES ...)``
``ON_CONFLICT``           ``INSERT ... ON CONFLICT (id) DO UPDATE ... WHERE <earlier>``
``ON_DUPLICATE_KEY``      ``INSERT ... ON DUPLICATE KEY UPDATE c = IF(<earlier>, VALUES(c), c)``
``DELETE_INSERT``         the fallback: ``DELETE`` the rows replaced, ``INSERT`` the new ones
                          (run the statements in one transaction)
``REPLACING_MERGE_TREE``  ``INSERT ... SELECT ... WHERE NOT EXISTS`` with a higher ``version``
                          (the load time in microseconds); reads use ``FINAL``
``REBUILD``               ``identifies``: append the copies not already stored at or before
                          them (anti join); an earlier copy is appended beside the later one
                          and every read dedupes (the as-of query always does).
                          ``users``: ``INSERT OVERWRITE`` from the as-of query
========================  ===============================================================

Statements longer than the warehouse's ``max_statement_bytes`` are split into smaller batches.

>>> import datetime as dt
>>> from personas_warehouse.model import Space, Audience, IdentifyEvent
>>> space = Space(audiences=[Audience("vip")])
>>> at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
>>> sqls = insert_statements(space, [IdentifyEvent("m1", "u1", at, {"vip": True})], "postgres",
...                          now=at)
>>> [sql.split(" ")[0] for sql in sqls]  # displaced users (2), identifies, users of the batch
['DELETE', 'INSERT', 'INSERT', 'INSERT']
>>> print(sqls[2][:60])
INSERT INTO "personas_default"."identifies" ("id", "user_id"
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Literal

from sqlglot import exp

from personas_warehouse.errors import (
    InvalidSpaceError,
    PersonasWarehouseError,
    UnsupportedValueError,
)
from personas_warehouse.model import IdentifyEvent, Space, TraitType, ensure_aware
from personas_warehouse.naming import column_names
from personas_warehouse.sql.query import (
    IDENTIFIES_ALIAS,
    UserIds,
    as_of_tree,
    binary_text,
    identifies_source,
    key_types,
)
from personas_warehouse.sql.render import render, render_spliced, string_literals
from personas_warehouse.sql.tables import (
    CLEARED_DELIMITER,
    IDENTIFIES,
    USERS,
    identifies_columns,
    table,
    users_columns,
)
from personas_warehouse.sql.values import (
    literal,
    null_literal,
    parameter_value,
    timestamp_from_text,
    timestamp_literal,
    timestamp_text_literal,
)
from personas_warehouse.warehouses import Capabilities, RowsRelation, Upsert, capabilities

__all__ = [
    "Paramstyle",
    "StatementTooLargeError",
    "check_ids",
    "cleared_keys",
    "dedupe_batch",
    "displaced_users_statements",
    "displaced_users_trees",
    "identifies_trees",
    "insert_rows",
    "insert_statements",
    "insert_trees",
    "refresh_users_statements",
    "refresh_users_trees",
    "staged_insert_statements",
    "version_of",
]

Paramstyle = Literal["qmark", "format", "numeric"]
"""The positional DB-API paramstyles :func:`insert_rows` writes."""

_SOURCE: Final = "_pw_s"
_TARGET: Final = "_pw_t"
_STORED: Final = "_pw_x"
_BATCH: Final = "_pw_b"
_BATCH_VALUES: Final = "_pw_v"
_BATCH_ROWS: Final = "pw_batch_rows"  # marks the row list _fill_batch fills
_BATCH_COLUMNS: Final = ("id", "user_id", "timestamp", "received_at")
_BATCH_USERS: Final = "_pw_bu"
_IDS: Final = "_pw_bi"
_OWNERS: Final = "_pw_owners"


class StatementTooLargeError(PersonasWarehouseError):
    """One event alone renders to a statement longer than the warehouse accepts."""


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def dedupe_batch(space: Space, events: Iterable[IdentifyEvent]) -> list[IdentifyEvent]:
    """The batch validated against ``space``, one event per message id (DESIGN.md's rule).

    >>> import datetime as dt
    >>> from personas_warehouse.model import Space
    >>> at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    >>> late = IdentifyEvent("m", "u", at, received_at=at + dt.timedelta(1))
    >>> [e.received_at == at for e in dedupe_batch(Space(), [late, IdentifyEvent("m", "u", at)])]
    [True]
    """
    best: dict[str, IdentifyEvent] = {}
    for raw in events:
        if not isinstance(raw, IdentifyEvent):
            raise InvalidSpaceError(f"expected IdentifyEvent values, got {raw!r}")
        event = space.validate_event(raw)
        current = best.get(event.message_id)
        if current is None or (event.received_at, event.timestamp, event.user_id) < (
            current.received_at,
            current.timestamp,
            current.user_id,
        ):
            best[event.message_id] = event
    return sorted(best.values(), key=lambda e: e.message_id)


def check_ids(events: Iterable[IdentifyEvent], dialect: str | Capabilities) -> None:
    """Refuse ids the warehouse's id columns cannot keep apart from others.

    Where ids compare with PAD SPACE (``ids_keep_trailing_spaces`` is False: MySQL, MariaDB),
    ``m1`` and ``m1 `` would be one primary key: such an id is refused instead of merged.

    >>> import datetime as dt
    >>> at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    >>> check_ids([IdentifyEvent("m1 ", "u", at)], "mysql")
    Traceback (most recent call last):
    ...
    personas_warehouse.errors.UnsupportedValueError: message id 'm1 ' ends with a space; \
mysql compares ids ignoring trailing spaces, so it would be the same row as 'm1': strip the \
spaces or encode the id
    >>> check_ids([IdentifyEvent("m1 ", "u", at)], "postgres")
    """
    caps = capabilities(dialect)
    if caps.ids_keep_trailing_spaces:
        return
    for event in events:
        for what, value in (("message id", event.message_id), ("user id", event.user_id)):
            if value != value.rstrip(" "):
                raise UnsupportedValueError(
                    f"{what} {value!r} ends with a space; {caps.sqlglot_dialect} compares ids "
                    f"ignoring trailing spaces, so it would be the same row as "
                    f"{value.rstrip(' ')!r}: strip the spaces or encode the id"
                )


def cleared_keys(space: Space, event: IdentifyEvent, dialect: str | Capabilities) -> str | None:
    """The ``cleared_keys`` text of an event: ``,col_a,col_b,`` for its cleared traits, or None.

    >>> import datetime as dt
    >>> from personas_warehouse.model import Space, ComputedTrait
    >>> space = Space(traits=[ComputedTrait("Plan Name"), ComputedTrait("b")])
    >>> at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    >>> cleared_keys(space, IdentifyEvent("m", "u", at, {"Plan Name": None, "b": "x"}), "duckdb")
    ',plan_name,'
    """
    names = column_names(space, capabilities(dialect))
    cleared = [
        names[key] for key in space.trait_keys if key in event.values and event.values[key] is None
    ]
    if not cleared:
        return None
    return CLEARED_DELIMITER + CLEARED_DELIMITER.join(cleared) + CLEARED_DELIMITER


def version_of(now: dt.datetime) -> int:
    """The ReplacingMergeTree version of rows written at ``now``: microseconds since 1970.

    >>> version_of(dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC))
    1000000
    """
    delta = ensure_aware(now, "now") - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return delta // dt.timedelta(microseconds=1)


def _identifies_names(space: Space, caps: Capabilities) -> list[str]:
    return [c.name for c in identifies_columns(space, caps)]


def _row(
    space: Space, event: IdentifyEvent, caps: Capabilities, now: dt.datetime, typed_nulls: bool
) -> list[exp.Expr]:
    """The literals of one ``identifies`` row, in column order."""
    types = key_types(space)
    cleared = cleared_keys(space, event, caps)
    row: list[exp.Expr] = [
        literal(caps, TraitType.STRING, event.message_id),
        literal(caps, TraitType.STRING, event.user_id),
        timestamp_literal(caps, event.timestamp),
        timestamp_literal(caps, event.received_at),
        timestamp_literal(caps, now),
        exp.null() if cleared is None else literal(caps, TraitType.STRING, cleared),
    ]
    if caps.upsert is Upsert.REPLACING_MERGE_TREE:
        row.append(exp.Literal.number(version_of(now)))
    for key, trait_type in types.items():
        value = event.values.get(key)
        value_type = trait_type if trait_type is not None else TraitType.BOOLEAN
        if value is None:
            row.append(null_literal(caps, value_type) if typed_nulls else exp.null())
        else:
            row.append(literal(caps, value_type, value))
    return row


def _relation(rows: Sequence[Sequence[exp.Expr]], columns: Sequence[str]) -> exp.Expr:
    return exp.Values(
        expressions=[exp.Tuple(expressions=list(row)) for row in rows],
        alias=exp.TableAlias(
            this=exp.to_identifier(_SOURCE),
            columns=[exp.to_identifier(c) for c in columns],
        ),
    )


def _col(name: str, qualifier: str | None = None) -> exp.Column:
    return exp.column(name, table=qualifier)


def _merge(
    target: exp.Table,
    source: exp.Query,
    columns: Sequence[str],
    updatable: Sequence[str],
    *,
    when_matched: exp.Expr | None = None,
) -> exp.Merge:
    """``MERGE INTO target USING (source) ON id``: update ``updatable`` of a matched row (only
    where ``when_matched`` holds, if given), insert ``columns`` of a new one."""
    merge_target = target.copy()
    merge_target.set("alias", exp.TableAlias(this=exp.to_identifier(_TARGET)))
    return exp.Merge(
        this=merge_target,
        using=source.subquery(_SOURCE),
        on=exp.EQ(this=_col("id", _TARGET), expression=_col("id", _SOURCE)),
        whens=exp.Whens(
            expressions=[
                exp.When(
                    matched=True,
                    condition=when_matched,
                    then=exp.Update(
                        expressions=[
                            exp.EQ(this=_col(c), expression=_col(c, _SOURCE)) for c in updatable
                        ]
                    ),
                ),
                exp.When(
                    matched=False,
                    then=exp.Insert(
                        this=exp.Tuple(expressions=[_col(c) for c in columns]),
                        expression=exp.Tuple(expressions=[_col(c, _SOURCE) for c in columns]),
                    ),
                ),
            ]
        ),
    )


def _earlier(
    caps: Capabilities, new: str | None, old: str | None, *, new_values: bool = False
) -> exp.Expr:
    """The copy ``new`` ranks before the copy ``old``: (received_at, timestamp, user_id) <.

    ``new_values``: read ``new``'s columns as ``VALUES(col)`` (MySQL's ON DUPLICATE KEY).
    """

    def n(name: str) -> exp.Expr:
        if new_values:
            return exp.Anonymous(this="VALUES", expressions=[exp.to_identifier(name)])
        return _col(name, new)

    def o(name: str) -> exp.Expr:
        return _col(name, old)

    def lt(name: str) -> exp.Expr:
        if name == "user_id":  # text: compared by code point, as in Python
            return exp.LT(this=binary_text(caps, n(name)), expression=binary_text(caps, o(name)))
        return exp.LT(this=n(name), expression=o(name))

    def eq(name: str) -> exp.Expr:
        return exp.EQ(this=n(name), expression=o(name))

    return exp.or_(
        lt("received_at"),
        exp.and_(
            eq("received_at"),
            exp.or_(lt("timestamp"), exp.and_(eq("timestamp"), lt("user_id"))),
        ),
    )


def _not_exists_stored(space: Space, caps: Capabilities, *, stored_final: bool) -> exp.Expr:
    """No stored copy of the source row ranks at or before it."""
    stored = table(space, IDENTIFIES)
    stored.set("alias", exp.TableAlias(this=exp.to_identifier(_STORED)))
    source: exp.Expr = exp.Final(this=stored) if stored_final else stored
    subquery = (
        exp.select(exp.Literal.number(1))
        .from_(source)
        .where(
            exp.and_(
                exp.EQ(this=_col("id", _STORED), expression=_col("id", _SOURCE)),
                exp.Not(this=exp.paren(_earlier(caps, _SOURCE, _STORED))),
            )
        )
    )
    return exp.Not(this=exp.Exists(this=subquery))


# --------------------------------------------------------------------------------------------
# identifies
# --------------------------------------------------------------------------------------------


def _staged_rows(
    space: Space, caps: Capabilities, staging: exp.Table, now: dt.datetime
) -> exp.Select:
    """The staging table's rows, one per message id (DESIGN.md's rule), load time = ``now``."""
    columns = _identifies_names(space, caps)
    load_time = {"uuid_ts": timestamp_literal(caps, now)}
    if caps.upsert is Upsert.REPLACING_MERGE_TREE:
        load_time["version"] = exp.Literal.number(version_of(now))
    ranked = exp.select(
        *[_col(c) for c in columns if c not in load_time],
        exp.alias_(
            exp.Window(
                this=exp.RowNumber(),
                partition_by=[_col("id")],
                order=exp.Order(
                    expressions=[
                        exp.Ordered(this=_col("received_at")),
                        exp.Ordered(this=_col("timestamp")),
                        exp.Ordered(this=binary_text(caps, _col("user_id"))),
                    ]
                ),
            ),
            "_pw_copy",
        ),
    ).from_(staging.copy())
    return (
        exp.select(
            *[
                exp.alias_(load_time[c], c) if c in load_time else exp.alias_(_col(c), c)
                for c in columns
            ]
        )
        .from_(ranked.subquery("_pw_staged"))
        .where(exp.EQ(this=_col("_pw_copy"), expression=exp.Literal.number(1)))
    )


def identifies_trees(
    space: Space,
    events: Sequence[IdentifyEvent],
    dialect: str | Capabilities,
    *,
    now: dt.datetime,
    staging: exp.Table | None = None,
) -> list[exp.Expression]:
    """The statements that write one (deduplicated) batch to ``identifies``.

    With ``staging``, the rows come from that table (laid out like ``identifies``) instead of
    ``events``.
    """
    caps = capabilities(dialect)
    columns = _identifies_names(space, caps)
    target = table(space, IDENTIFIES)
    upsert = caps.upsert
    uses_relation = upsert not in (Upsert.ON_CONFLICT, Upsert.ON_DUPLICATE_KEY)
    rows = [_row(space, event, caps, now, typed_nulls=uses_relation) for event in events]
    if not rows and staging is None:
        return []
    updatable = [c for c in columns if c != "id"]
    staged = _staged_rows(space, caps, staging, now) if staging is not None else None
    plain_rows: exp.Expr = (
        staged.where(exp.EQ(this=exp.Literal.number(1), expression=exp.Literal.number(1)))
        if staged is not None
        else exp.Values(expressions=[exp.Tuple(expressions=r) for r in rows])
    )

    if upsert is Upsert.ON_CONFLICT:
        return [
            exp.Insert(
                this=exp.Schema(this=target, expressions=[exp.to_identifier(c) for c in columns]),
                expression=plain_rows,
                conflict=exp.OnConflict(
                    conflict_keys=[exp.to_identifier("id")],
                    action=exp.var("DO UPDATE"),
                    expressions=[
                        exp.EQ(this=_col(c), expression=_col(c, "excluded")) for c in updatable
                    ],
                    where=exp.Where(this=_earlier(caps, "excluded", IDENTIFIES)),
                ),
            )
        ]

    if upsert is Upsert.ON_DUPLICATE_KEY:
        # MySQL applies the assignments left to right, each seeing the ones before: the
        # ordering columns go last, user_id, then timestamp, then received_at, so the test
        # keeps its answer for every column (see docs/sql.md)
        last = ["user_id", "timestamp", "received_at"]
        ordered = [c for c in updatable if c not in last] + last
        # stored columns are qualified: with INSERT ... SELECT (the staged path) a bare name
        # would also match the SELECT's own columns
        assignments = [
            exp.EQ(
                this=_col(c, IDENTIFIES),
                expression=exp.If(
                    this=_earlier(caps, None, IDENTIFIES, new_values=True),
                    true=exp.Anonymous(this="VALUES", expressions=[exp.to_identifier(c)]),
                    false=_col(c, IDENTIFIES),
                ),
            )
            for c in ordered
        ]
        return [
            exp.Insert(
                this=exp.Schema(this=target, expressions=[exp.to_identifier(c) for c in columns]),
                expression=plain_rows,
                conflict=exp.OnConflict(
                    duplicate=True, expressions=assignments, action=exp.var("UPDATE")
                ),
            )
        ]

    relation: exp.Expr = (
        staged.subquery(_SOURCE) if staged is not None else _relation(rows, columns)
    )
    select_source = exp.select(*[_col(c, _SOURCE) for c in columns]).from_(relation)

    if upsert is Upsert.MERGE:
        condition = exp.paren(_earlier(caps, _SOURCE, _TARGET))
        return [_merge(target, select_source, columns, updatable, when_matched=condition)]

    insert_new = exp.Insert(
        this=exp.Schema(this=target.copy(), expressions=[exp.to_identifier(c) for c in columns]),
        expression=select_source.where(
            _not_exists_stored(space, caps, stored_final=upsert is Upsert.REPLACING_MERGE_TREE)
        ),
    )
    if upsert in (Upsert.REPLACING_MERGE_TREE, Upsert.REBUILD):
        return [insert_new]

    # DELETE_INSERT, the fallback written once: drop the stored copies a batch copy ranks
    # before, then insert the batch rows no stored copy is left for
    replaced = (
        exp.select(exp.Literal.number(1))
        .from_(relation.copy())
        .where(
            exp.and_(
                exp.EQ(this=_col("id", _SOURCE), expression=_col("id", IDENTIFIES)),
                _earlier(caps, _SOURCE, IDENTIFIES),
            )
        )
    )
    delete = exp.Delete(this=target.copy(), where=exp.Where(this=exp.Exists(this=replaced)))
    return [delete, insert_new]


# --------------------------------------------------------------------------------------------
# users
# --------------------------------------------------------------------------------------------


def _users_rows(
    space: Space,
    caps: Capabilities,
    wanted: list[str] | exp.Query | None,
    now: dt.datetime,
    *,
    log: exp.Expr | None = None,
) -> exp.Select:
    """The ``users`` rows of ``wanted`` recomputed from ``identifies`` (or ``log``, read in its
    place: see :func:`~personas_warehouse.sql.query.counted_events_tree`) with no upper time
    bound, in the table's column order, written at ``now``."""
    names = [c.name for c in users_columns(space, caps)]
    state = as_of_tree(space, None, caps, user_ids=wanted, log=log)
    extra: list[exp.Expr] = [exp.alias_(timestamp_literal(caps, now), "uuid_ts")]
    if caps.upsert is Upsert.REPLACING_MERGE_TREE:
        extra.append(exp.alias_(exp.Literal.number(version_of(now)), "version"))
    rows = exp.select(
        *[_col(c, _SOURCE) for c in names if c not in ("uuid_ts", "version")], *extra
    ).from_(state.subquery(_SOURCE))
    # the as-of query's columns are users' columns without uuid_ts / version, in order
    return exp.select(*[_col(c) for c in names]).from_(rows.subquery("_pw_rows"))


def refresh_users_trees(
    space: Space,
    user_ids: UserIds | None,
    dialect: str | Capabilities,
    *,
    now: dt.datetime,
) -> list[exp.Expression]:
    """Recompute the ``users`` rows of ``user_ids`` from ``identifies`` and write them.

    ``user_ids=None`` recomputes everyone (``REBUILD`` always does: it overwrites the table).
    """
    caps = capabilities(dialect)
    now = ensure_aware(now, "now")
    target = table(space, USERS)
    names = [c.name for c in users_columns(space, caps)]
    rebuild = caps.upsert is Upsert.REBUILD
    wanted: list[str] | exp.Query | None
    if rebuild or user_ids is None:
        wanted = None
    elif isinstance(user_ids, exp.Query):
        wanted = user_ids
    else:
        wanted = sorted(set(user_ids))
        if not wanted:
            return []
    ordered_rows = _users_rows(space, caps, wanted, now)
    schema = exp.Schema(this=target, expressions=[exp.to_identifier(c) for c in names])
    updatable = [c for c in names if c != "id"]

    if caps.upsert is Upsert.ON_CONFLICT:
        # `WHERE 1 = 1`: SQLite cannot otherwise tell ON CONFLICT from a join constraint
        return [
            exp.Insert(
                this=schema,
                expression=ordered_rows.where(
                    exp.EQ(this=exp.Literal.number(1), expression=exp.Literal.number(1))
                ),
                conflict=exp.OnConflict(
                    conflict_keys=[exp.to_identifier("id")],
                    action=exp.var("DO UPDATE"),
                    expressions=[
                        exp.EQ(this=_col(c), expression=_col(c, "excluded")) for c in updatable
                    ],
                ),
            )
        ]
    if caps.upsert is Upsert.ON_DUPLICATE_KEY:
        return [
            exp.Insert(
                this=schema,
                expression=ordered_rows,
                conflict=exp.OnConflict(
                    duplicate=True,
                    action=exp.var("UPDATE"),
                    expressions=[
                        exp.EQ(
                            this=_col(c),
                            expression=exp.Anonymous(
                                this="VALUES", expressions=[exp.to_identifier(c)]
                            ),
                        )
                        for c in updatable
                    ],
                ),
            )
        ]
    if caps.upsert is Upsert.MERGE:
        return [_merge(target, ordered_rows, names, updatable)]
    if caps.upsert is Upsert.REPLACING_MERGE_TREE:
        return [exp.Insert(this=schema, expression=ordered_rows)]
    if rebuild:
        return [exp.Insert(this=target.copy(), expression=ordered_rows, overwrite=True)]
    # DELETE_INSERT
    delete_where: exp.Expr
    if wanted is None:
        delete_where = exp.true()
    elif isinstance(wanted, exp.Query):
        delete_where = exp.In(this=_col("id"), query=exp.Subquery(this=wanted.copy()))
    else:
        delete_where = exp.In(this=_col("id"), expressions=[exp.Literal.string(u) for u in wanted])
    return [
        exp.Delete(this=target.copy(), where=exp.Where(this=delete_where)),
        exp.Insert(this=schema.copy(), expression=ordered_rows),
    ]


def refresh_users_statements(
    space: Space,
    user_ids: UserIds | None,
    dialect: str | Capabilities,
    *,
    now: dt.datetime | None = None,
) -> list[str]:
    """Rendered :func:`refresh_users_trees` (after a bulk load with :func:`insert_rows`)."""
    caps = capabilities(dialect)
    moment = dt.datetime.now(dt.UTC) if now is None else now
    return [render(tree, caps) for tree in refresh_users_trees(space, user_ids, caps, now=moment)]


# --------------------------------------------------------------------------------------------
# users displaced by a load: an earlier copy of a stored message under another user
# --------------------------------------------------------------------------------------------


def _key_text(caps: Capabilities, expression: exp.Expr) -> exp.Expr:
    """An id of the batch compared as the id columns compare (their ``key_collation``)."""
    if caps.key_collation is None:
        return expression
    return exp.Collate(this=expression, expression=exp.to_identifier(caps.key_collation))


def _batch_texts(caps: Capabilities, events: Sequence[IdentifyEvent]) -> list[tuple[str, ...]]:
    """The rows of :func:`_batch_select` as text: ``(id, user_id, timestamp, received_at)`` per
    event, timestamps as :func:`timestamp_text_literal` writes them."""
    return [
        (
            e.message_id,
            e.user_id,
            timestamp_text_literal(caps, e.timestamp).name,
            timestamp_text_literal(caps, e.received_at).name,
        )
        for e in events
    ]


def _batch_select(caps: Capabilities) -> exp.Select:
    """The batch's ``id, user_id, timestamp, received_at``: all the statements before the write
    need of a copy (its rank; and its users are the users of the batch). Timestamps are text
    in the rows, typed once around them (a CAST per row costs more to render than the row).

    The rows are left out: :func:`_fill_batch` puts them into the finished statement
    (sqlglot's builders copy their operands, and copying thousands of rows at each step would
    cost more than everything else)."""
    rows = _BATCH_VALUES
    if caps.rows_relation is RowsRelation.ARRAY_JOIN:
        # SELECT tupleElement(_pw_v, 1) AS id, ... FROM (SELECT arrayJoin([...]) AS _pw_v)
        array = exp.Array(expressions=[])
        array.meta[_BATCH_ROWS] = True
        source: exp.Expr = exp.select(exp.alias_(exp.Explode(this=array), rows)).subquery(rows)
        raw: list[exp.Expr] = [
            exp.Anonymous(this="tupleElement", expressions=[_col(rows), exp.Literal.number(i + 1)])
            for i in range(len(_BATCH_COLUMNS))
        ]
    else:
        values = exp.Values(expressions=[])
        values.meta[_BATCH_ROWS] = True
        names = exp.TableAlias(
            this=exp.to_identifier(rows), columns=[exp.to_identifier(c) for c in _BATCH_COLUMNS]
        )
        raw = [_col(c) for c in _BATCH_COLUMNS]
        if caps.rows_relation is RowsRelation.VALUES:
            values.set("alias", names)
            source = values
        else:  # CTE: a VALUES list in FROM cannot name its columns
            source = exp.to_identifier(rows)
    typed = exp.select(
        exp.alias_(_key_text(caps, raw[0]), "id"),
        exp.alias_(_key_text(caps, raw[1]), "user_id"),
        exp.alias_(timestamp_from_text(caps, raw[2]), "timestamp"),
        exp.alias_(timestamp_from_text(caps, raw[3]), "received_at"),
    ).from_(source, copy=False)
    if caps.rows_relation is RowsRelation.CTE:
        typed.set("with_", exp.With(expressions=[exp.CTE(this=values, alias=names)]))
    return typed


def _fill_batch(tree: exp.Expression, texts: Sequence[tuple[str, ...]]) -> exp.Expression:
    """``tree`` with the rows ``texts`` in every row list :func:`_batch_select` left empty."""
    for node in tree.find_all(exp.Values, exp.Array):
        if node.meta.get(_BATCH_ROWS):
            rows = [exp.Tuple(expressions=[exp.Literal.string(v) for v in row]) for row in texts]
            node.set("expressions", rows)
    return tree


def _delete_users(space: Space, caps: Capabilities, user_ids: exp.Select) -> exp.Delete:
    """``DELETE`` the ``users`` rows of the users ``user_ids`` returns (one column).

    On ClickHouse (``REPLACING_MERGE_TREE``) this is a lightweight ``DELETE``: it masks every
    stored version of the row at once (merges drop them later), ``FINAL`` reads no longer see
    it, and the next version written (the recomputed row, at ``now``) is the row again. It
    runs synchronously by default (``lightweight_deletes_sync``). Tested on chDB.
    """
    target = table(space, USERS)
    if not caps.delete_join:
        return exp.Delete(
            this=target,
            where=exp.Where(this=exp.In(this=_col("id"), query=exp.Subquery(this=user_ids))),
        )
    # DELETE _pw_y FROM users AS _pw_y JOIN (SELECT DISTINCT ...) AS _pw_d ON ... (the
    # alias: MySQL resolves a bare name in the delete list in the default database)
    alias, found = "_pw_y", "_pw_d"
    target.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
    target.set(
        "joins",
        [
            exp.Join(
                this=user_ids.distinct().subquery(found),
                on=exp.EQ(this=_col("id", alias), expression=_col("user_id", found)),
            )
        ],
    )
    return exp.Delete(this=target, tables=[exp.table_(alias)])


def displaced_users_trees(
    space: Space,
    events: Sequence[IdentifyEvent],
    dialect: str | Capabilities,
    *,
    now: dt.datetime,
    staging: exp.Table | None = None,
) -> list[exp.Expression]:
    """The statements to run *before* writing one (deduplicated) batch to ``identifies`` so
    that ``users`` stays the reconstruction of the users the write takes events from.

    A batch copy of a stored message that ranks earlier replaces the stored copy (``_earlier``,
    the test the write uses); when the two copies have different users, the stored copy's user
    loses the event. After the write that user can no longer be found (the stored copy is
    gone), so before it, with the displaced users = the users of the stored copies replaced
    by a batch copy of another user (found through the batch's ids, the primary key):

    1. ``DELETE`` the ``users`` rows of the displaced users;
    2. ``INSERT`` the rows of the displaced users who are not users of the batch (those are
       refreshed after the write), recomputed from ``identifies`` without the rows the batch
       replaces. A user left with no event gets no row (and a displaced user of the batch left
       with none keeps the deletion: the refresh after the write writes no row for it).

    Step 2 reads ``identifies`` as holding one row per message id, which it does under every
    strategy but ``REBUILD`` (primary key; ``FINAL`` on ClickHouse). ``REBUILD`` needs
    nothing: ``users`` is rebuilt whole after the write. With ``staging``, the batch is that
    table's rows (every copy; laid out like ``identifies``).
    """
    caps = capabilities(dialect)
    if not space.sync_users or caps.upsert is Upsert.REBUILD:
        return []
    if staging is None and not events:
        return []

    def inline(alias: str) -> exp.Expr:
        # the batch's copies, written out: the staging table, or the batch's VALUES
        if staging is not None:
            relation = staging.copy()
            relation.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
            return relation
        return _batch_select(caps).subquery(alias)

    def named(alias: str) -> exp.Expr:
        # the batch's copies where the statement names them once (the CTE _pw_b)
        if staging is not None:
            return inline(alias)
        return exp.Table(
            this=exp.to_identifier(_BATCH), alias=exp.TableAlias(this=exp.to_identifier(alias))
        )

    def taken(batch: Callable[[str], exp.Expr], *columns: str) -> exp.Select:
        # the stored copies a batch copy of another user ranks before: the write replaces them.
        # The join finds them through the primary key; ClickHouse needs the ids as an IN to
        # read only the parts that hold them
        ids: exp.Expr
        if staging is None and batch is inline:
            ids = exp.In(
                this=_col("id", _STORED),
                expressions=[exp.Literal.string(i) for i in sorted({e.message_id for e in events})],
            )
        else:
            ids = exp.In(
                this=_col("id", _STORED),
                query=exp.Subquery(this=exp.select(_col("id", _IDS)).from_(batch(_IDS))),
            )
        return (
            exp.select(*[exp.alias_(_col(c, _STORED), c) for c in columns])
            .from_(batch(_BATCH), copy=False)
            .join(
                identifies_source(space, caps, _STORED),
                on=exp.EQ(this=_col("id", _STORED), expression=_col("id", _BATCH)),
                copy=False,
            )
            .where(
                ids,
                exp.paren(_earlier(caps, _BATCH, _STORED)),
                exp.NEQ(this=_col("user_id", _STORED), expression=_col("user_id", _BATCH)),
                copy=False,
            )
        )

    # 1. the users rows of every displaced user go first (the batch written out: ClickHouse
    # resolves no CTE in the condition of a DELETE)
    delete = _delete_users(space, caps, taken(inline, "user_id"))

    # 2. identifies as the write will leave it, for the displaced users not in the batch:
    # their rows but the taken ones. When nothing is taken (the common case) no engine should
    # read identifies: the users drive a join (MariaDB scans the table for an IN), and an
    # uncorrelated EXISTS (SQLite and ClickHouse test it once, before any scan) guards it.
    # Every subquery is uncorrelated (ClickHouse takes none inside a JOIN)
    # DISTINCT: PostgreSQL runs NOT IN as a hashed subplan only when it expects the hash to fit
    # in work_mem; without DISTINCT it planned a nested loop over 1M staged copies, whose cost
    # made it JIT-compile the statement (0.8 s) before the EXISTS guard skipped it all
    batch_users = (
        exp.select(_col("user_id", _BATCH_USERS)).from_(named(_BATCH_USERS)).distinct(copy=False)
    )
    outside = taken(named, "id", "user_id").where(
        exp.Not(this=exp.In(this=_col("user_id", _STORED), query=exp.Subquery(this=batch_users))),
        copy=False,
    )
    owners = (
        exp.select(_col("user_id"))
        .from_(outside.subquery("_pw_o"), copy=False)
        .distinct(copy=False)
    )
    log = (
        exp.select(*[_col(c, IDENTIFIES_ALIAS) for c in _identifies_names(space, caps)])
        .from_(identifies_source(space, caps), copy=False)
        .join(
            owners.subquery(_OWNERS),
            on=exp.EQ(this=_col("user_id", IDENTIFIES_ALIAS), expression=_col("user_id", _OWNERS)),
            copy=False,
        )
        .where(
            exp.Exists(this=taken(named, "id")),
            exp.Not(
                this=exp.In(
                    this=_col("id", IDENTIFIES_ALIAS),
                    query=exp.Subquery(this=taken(named, "id")),
                )
            ),
            copy=False,
        )
    )
    if staging is None:
        log.set(
            "with_",
            exp.With(
                expressions=[
                    exp.CTE(
                        this=_batch_select(caps),
                        alias=exp.TableAlias(this=exp.to_identifier(_BATCH)),
                    )
                ]
            ),
        )
    names = [c.name for c in users_columns(space, caps)]
    insert = exp.Insert(
        this=exp.Schema(
            this=table(space, USERS), expressions=[exp.to_identifier(c) for c in names]
        ),
        expression=_users_rows(
            space, caps, None, ensure_aware(now, "now"), log=log.subquery(IDENTIFIES_ALIAS)
        ),
    )
    trees: list[exp.Expression] = [delete, insert]
    if staging is not None:
        return trees
    texts = _batch_texts(caps, events)
    return [_fill_batch(tree, texts) for tree in trees]


_PROBE: Final = "_pw_probe_"
"""Part of every probe value :func:`_render_displaced` builds its statements from."""

_SPLICE_FROM: Final = 32
"""Batches of this many events or more get their displaced-users statements spliced."""


def _render_displaced(
    space: Space, batch: Sequence[IdentifyEvent], caps: Capabilities, now: dt.datetime
) -> list[str]:
    """The rendered :func:`displaced_users_trees` of ``batch``.

    A large batch is rendered once as two probe events, and its rows and ids are then put in
    as text (:func:`~personas_warehouse.sql.render.render_spliced`): rendering 20,000 rows
    through sqlglot took 2 s, half the parameterised path's time. Where a dialect writes the
    rows in another form, the real trees are rendered.
    """
    if len(batch) < _SPLICE_FROM:
        return [render(t, caps) for t in displaced_users_trees(space, batch, caps, now=now)]
    probe = [
        IdentifyEvent(
            f"{_PROBE}m{i}", f"{_PROBE}u{i}", event.timestamp, received_at=event.received_at
        )
        for i, event in enumerate(batch[:2])
    ]
    literal = string_literals(caps)

    def rows(texts: list[tuple[str, ...]]) -> str:
        return ", ".join(["(" + ", ".join(map(literal, row)) + ")" for row in texts])

    def ids(events: Sequence[IdentifyEvent]) -> str:
        return ", ".join(map(literal, sorted({e.message_id for e in events})))

    lists = [
        (rows(_batch_texts(caps, probe)), rows(_batch_texts(caps, batch))),
        (ids(probe), ids(batch)),
    ]
    statements = []
    for tree in displaced_users_trees(space, probe, caps, now=now):
        spliced = render_spliced(tree, caps, lists, _PROBE)
        if spliced is None:
            return [render(t, caps) for t in displaced_users_trees(space, batch, caps, now=now)]
        statements.append(spliced)
    return statements


def displaced_users_statements(
    space: Space,
    events: Iterable[IdentifyEvent],
    dialect: str | Capabilities,
    *,
    now: dt.datetime | None = None,
) -> list[str]:
    """Rendered :func:`displaced_users_trees` for the parameterised path: run them just before
    the ``executemany`` of :func:`insert_rows` with the same events (in the same transaction
    where the warehouse has them), then :func:`refresh_users_statements` for the events' users.

    They are never split: what they do depends on ``identifies`` before the write, so a batch
    whose statements exceed ``max_statement_bytes`` is refused (:class:`StatementTooLargeError`):
    load it in smaller batches, each through the three steps.

    >>> import datetime as dt
    >>> from personas_warehouse.model import Space, Audience
    >>> at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    >>> sqls = displaced_users_statements(Space(audiences=[Audience("vip")]),
    ...                                   [IdentifyEvent("m1", "u1", at)], "sqlite", now=at)
    >>> [s.split(" ")[0] for s in sqls]
    ['DELETE', 'INSERT']
    """
    _check_space(space)
    caps = capabilities(dialect)
    moment = ensure_aware(dt.datetime.now(dt.UTC) if now is None else now, "now")
    batch = dedupe_batch(space, events)
    check_ids(batch, caps)
    statements = _render_displaced(space, batch, caps, moment)
    limit = caps.max_statement_bytes
    size = max((len(s.encode("utf-8")) for s in statements), default=0)
    if size > limit:
        raise StatementTooLargeError(
            f"the statements for the users {len(batch)} events may displace render to a "
            f"{size}-byte statement; {caps.sqlglot_dialect} accepts {limit}: load the events in "
            "smaller batches (displaced_users_statements, insert_rows, refresh_users_statements "
            "for each)"
        )
    return statements


# --------------------------------------------------------------------------------------------
# Putting it together
# --------------------------------------------------------------------------------------------


def _check_space(space: Space) -> None:
    if not space.sync_identifies:
        raise InvalidSpaceError(
            "this space does not sync identifies (sync_identifies=False), so there is no log "
            "to append to; write users rows with the sync planner instead"
        )


def _render_batches(
    space: Space,
    events: list[IdentifyEvent],
    caps: Capabilities,
    now: dt.datetime,
) -> list[list[str]]:
    """Render the batch, halving it until each statement fits ``max_statement_bytes``."""
    limit = caps.max_statement_bytes
    trees = identifies_trees(space, events, caps, now=now)
    if space.sync_users and caps.upsert is not Upsert.REBUILD:
        trees += refresh_users_trees(space, {e.user_id for e in events}, caps, now=now)
    statements = _render_displaced(space, events, caps, now)
    statements += [render(tree, caps) for tree in trees]
    if all(len(s.encode("utf-8")) <= limit for s in statements):
        return [statements]
    if len(events) == 1:
        size = max(len(s.encode("utf-8")) for s in statements)
        raise StatementTooLargeError(
            f"event {events[0].message_id!r} alone renders to a {size}-byte statement; "
            f"{caps.sqlglot_dialect} accepts {limit}: shorten its values or load it with "
            "insert_rows (parameters)"
        )
    half = len(events) // 2
    return _render_batches(space, events[:half], caps, now) + _render_batches(
        space, events[half:], caps, now
    )


def insert_trees(
    space: Space,
    events: Iterable[IdentifyEvent],
    dialect: str | Capabilities,
    *,
    now: dt.datetime | None = None,
) -> list[exp.Expression]:
    """The trees of :func:`insert_statements` for one batch (no splitting by size)."""
    _check_space(space)
    caps = capabilities(dialect)
    moment = ensure_aware(dt.datetime.now(dt.UTC) if now is None else now, "now")
    batch = dedupe_batch(space, events)
    check_ids(batch, caps)
    trees = displaced_users_trees(space, batch, caps, now=moment)
    trees += identifies_trees(space, batch, caps, now=moment)
    if space.sync_users and batch:
        wanted = None if caps.upsert is Upsert.REBUILD else {e.user_id for e in batch}
        trees += refresh_users_trees(space, wanted, caps, now=moment)
    return trees


def insert_statements(
    space: Space,
    events: Iterable[IdentifyEvent],
    dialect: str | Capabilities,
    *,
    now: dt.datetime | None = None,
) -> list[str]:
    """Statements appending ``events`` to ``identifies``, idempotent on message id, and
    bringing the ``users`` rows of their users up to date (see the module docs).

    ``now`` is the load time written to ``uuid_ts`` (and the ClickHouse row version);
    default: the wall clock. Run the statements in order, in one transaction where the
    warehouse has transactions (``DELETE_INSERT`` relies on it). Batches whose statements would
    exceed the warehouse's ``max_statement_bytes`` are split.
    """
    _check_space(space)
    caps = capabilities(dialect)
    moment = ensure_aware(dt.datetime.now(dt.UTC) if now is None else now, "now")
    batch = dedupe_batch(space, events)
    check_ids(batch, caps)
    if not batch:
        return []
    statements = [s for group in _render_batches(space, batch, caps, moment) for s in group]
    if space.sync_users and caps.upsert is Upsert.REBUILD:
        statements += [render(t, caps) for t in refresh_users_trees(space, None, caps, now=moment)]
    return statements


def staged_insert_statements(
    space: Space,
    staging: str,
    dialect: str | Capabilities,
    *,
    staging_schema: str | None = None,
    now: dt.datetime | None = None,
) -> list[str]:
    """The bulk path: load a staging table (laid out like ``identifies``, e.g. with the
    engine's COPY), then these statements upsert its rows into ``identifies`` with the same
    idempotent rules as :func:`insert_statements` (copies deduplicated, earlier copies win;
    ``uuid_ts`` = ``now``), after bringing up to date the ``users`` rows of the users whose
    stored events its copies replace (:func:`displaced_users_trees`), and refresh the ``users``
    rows of the users it holds. Run them in order, in one transaction where the warehouse has
    transactions.

    ``identifies`` rows are written by the warehouse's ``staged_upsert`` strategy where it has
    one (delete-then-insert on PostgreSQL and DuckDB, faster than their ``ON CONFLICT`` for
    whole tables of rows). Two such loads of the same new message ids running at once: the
    second fails on the primary key when the first commits (nothing is half-written; run it
    again), where ``ON CONFLICT`` would have waited and merged. ``users`` rows are upserted as
    on every other path, so a column of ``users`` the space does not sync keeps its values.

    >>> from personas_warehouse.model import Space, Audience
    >>> sqls = staged_insert_statements(Space(audiences=[Audience("vip")]), "stage", "sqlite")
    >>> [s.split(" ")[0] for s in sqls], all('"stage"' in sql for sql in sqls)
    (['DELETE', 'INSERT', 'INSERT', 'INSERT'], True)
    >>> sqls = staged_insert_statements(Space(audiences=[Audience("vip")]), "stage", "postgres")
    >>> [s.split(" ")[0] for s in sqls]
    ['DELETE', 'INSERT', 'DELETE', 'INSERT', 'INSERT']
    """
    _check_space(space)
    caps = capabilities(dialect)
    writes = caps if caps.staged_upsert is None else caps.with_upsert(caps.staged_upsert)
    moment = ensure_aware(dt.datetime.now(dt.UTC) if now is None else now, "now")
    source = exp.table_(staging, db=staging_schema)
    trees = displaced_users_trees(space, [], caps, now=moment, staging=source)
    trees += identifies_trees(space, [], writes, now=moment, staging=source)
    if space.sync_users:
        users = exp.select(_col("user_id")).from_(source.copy()).distinct()
        wanted = None if caps.upsert is Upsert.REBUILD else users
        trees += refresh_users_trees(space, wanted, caps, now=moment)
    return [render(tree, caps) for tree in trees]


# --------------------------------------------------------------------------------------------
# The parameterised bulk path
# --------------------------------------------------------------------------------------------


def _placeholder(paramstyle: Paramstyle, index: int) -> str:
    if paramstyle == "qmark":
        return "?"
    if paramstyle == "format":
        return "%s"
    if paramstyle == "numeric":
        return f":{index + 1}"
    raise InvalidSpaceError(f"unknown paramstyle {paramstyle!r}; use qmark, format or numeric")


def insert_rows(
    space: Space,
    events: Iterable[IdentifyEvent],
    dialect: str | Capabilities,
    paramstyle: Paramstyle = "qmark",
) -> tuple[str, list[tuple[Any, ...]]]:
    """One ``identifies`` upsert with placeholders, and its rows, for DB-API ``executemany``.

    The statement has the same idempotent semantics as :func:`insert_statements` (ON CONFLICT
    / ON DUPLICATE KEY). Around the ``executemany``, in one transaction where the warehouse
    has them:

    1. before it, :func:`displaced_users_statements` with the same events: an earlier copy of
       a stored message under another user replaces the stored copy, and that user's
       ``users`` row must be brought up to date while the stored copy can still be found;
    2. after it, :func:`refresh_users_statements` for the users loaded.

    ``uuid_ts`` is the time this function ran. Warehouses whose upsert needs the rows as a
    relation (MERGE, DELETE_INSERT, REPLACING_MERGE_TREE, REBUILD) take
    :func:`insert_statements` instead; asking for them here is an error.

    >>> import datetime as dt
    >>> from personas_warehouse.model import Space, Audience
    >>> at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    >>> sql, rows = insert_rows(Space(audiences=[Audience("vip")]),
    ...                         [IdentifyEvent("m1", "u1", at, {"vip": True})], "sqlite")
    >>> sql.count("?"), rows[0][:2]
    (7, ('m1', 'u1'))
    """
    _check_space(space)
    caps = capabilities(dialect)
    if caps.upsert not in (Upsert.ON_CONFLICT, Upsert.ON_DUPLICATE_KEY):
        raise InvalidSpaceError(
            f"insert_rows needs ON CONFLICT or ON DUPLICATE KEY; {caps.sqlglot_dialect} "
            f"upserts by {caps.upsert.value}: use insert_statements"
        )
    now = dt.datetime.now(dt.UTC)
    batch = dedupe_batch(space, events)
    check_ids(batch, caps)
    columns = _identifies_names(space, caps)
    marker = "_pw_param_"
    template_event = [exp.var(f"{marker}{i:05d}") for i in range(len(columns))]
    # build the statement around placeholders, then substitute the driver's markers
    probe = IdentifyEvent("probe", "probe", now)
    trees = identifies_trees(space, [probe], caps, now=now)
    insert = trees[0]
    values = insert.expression
    values.set("expressions", [exp.Tuple(expressions=template_event)])
    sql = render(insert, caps)
    for i in range(len(columns)):
        sql = sql.replace(f"{marker}{i:05d}", _placeholder(paramstyle, i), 1)
    types = key_types(space)
    rows: list[tuple[Any, ...]] = []
    for event in batch:
        row: list[Any] = [
            event.message_id,
            event.user_id,
            parameter_value(caps, None, event.timestamp),
            parameter_value(caps, None, event.received_at),
            parameter_value(caps, None, now),
            cleared_keys(space, event, caps),
        ]
        for key, trait_type in types.items():
            value_type = trait_type if trait_type is not None else TraitType.BOOLEAN
            row.append(parameter_value(caps, value_type, event.values.get(key)))
        rows.append(tuple(row))
    return sql, rows
