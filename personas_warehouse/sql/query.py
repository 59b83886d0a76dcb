"""Rebuilding history in SQL: the ``users`` table as of any moment, membership intervals, sizes.

Every query implements DESIGN.md's rules with constructs every target runs: ``ROW_NUMBER`` and
``MIN`` windows in subqueries, ``CASE``, ``GROUP BY`` (no ``IGNORE NULLS``, ``QUALIFY``,
``DISTINCT ON`` or ASOF joins). The plan of :func:`as_of_query`:

1. ``dedup``: every row of ``identifies`` with its copy rank per message id, ordered by
   ``(received_at, timestamp, user_id)``; rank 1 is the event. This runs over the whole log
   (restricted only to the message ids of the wanted users), before any time filter;
2. ``counted``: rank-1 rows with ``timestamp <= ts`` and ``received_at <= known_at``, each with
   its position ``rn`` per user, newest first by ``(timestamp, received_at, message_id)``;
3. ``decided``: for every key, the smallest ``rn`` of a row that carries the key (a value, or
   the column named in ``cleared_keys``): the event that decides the key;
4. one row per user: for every key the value of its deciding row (``MAX`` over a single
   non-NULL candidate; booleans and JSON go through a portable encoding, see
   :func:`personas_warehouse.sql.values.encode_for_max`), with the newest ``timestamp`` and
   ``received_at`` of the counted events.

Where the warehouse has the ``filtered_arg_min`` capability (DuckDB), steps 3-4 are one
``GROUP BY`` instead: see :func:`filtered_arg_min`.

Internal column names start with ``_pw_`` so no alias can shadow a column (ClickHouse substitutes
aliases inside the SELECT that defines them).

>>> from personas_warehouse.model import Space, Audience
>>> sql = as_of_query(Space(audiences=[Audience("vip")]), None, "postgres")
>>> sql.startswith('SELECT "_pw_u" AS "id"')
True
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Final

from sqlglot import exp

from personas_warehouse.errors import InvalidSpaceError
from personas_warehouse.model import Space, TraitType, ensure_aware
from personas_warehouse.naming import column_names
from personas_warehouse.sql.render import render
from personas_warehouse.sql.tables import CLEARED_DELIMITER, IDENTIFIES, table
from personas_warehouse.sql.values import (
    encode_for_max,
    finish_max,
    timestamp_literal,
)
from personas_warehouse.warehouses import Capabilities, Upsert, capabilities

__all__ = [
    "IDENTIFIES_ALIAS",
    "UserIds",
    "as_of_query",
    "as_of_tree",
    "audience_size_query",
    "audience_size_tree",
    "binary_text",
    "counted_events_tree",
    "filtered_arg_min",
    "identifies_source",
    "key_types",
    "membership_intervals_query",
    "membership_intervals_tree",
]

MESSAGE: Final = "_pw_m"
USER: Final = "_pw_u"
TIMESTAMP: Final = "_pw_t"
RECEIVED: Final = "_pw_r"
CLEARED: Final = "_pw_c"
COPY_RANK: Final = "_pw_copy"
POSITION: Final = "_pw_rn"
IDENTIFIES_ALIAS: Final = "_pw_i"
"""The alias of ``identifies`` in the as-of plan (:func:`identifies_source`'s default); a ``log``
given to :func:`counted_events_tree` in its place takes it too."""


def _key_alias(index: int) -> str:
    return f"_pw_k{index}"


def _first_alias(index: int) -> str:
    return f"_pw_f{index}"


def key_types(space: Space) -> dict[str, TraitType | None]:
    """Every synced key with its trait type (``None`` for an audience), in column order."""
    types = space.trait_types
    return {key: types.get(key) for key in space.keys}


def identifies_source(
    space: Space, dialect: str | Capabilities, alias: str = IDENTIFIES_ALIAS
) -> exp.Expr:
    """The ``identifies`` table to read from (``FINAL`` where rows are versions).

    >>> from personas_warehouse.sql.render import render
    >>> render(exp.select("*").from_(identifies_source(Space(), "clickhouse")), "clickhouse")
    'SELECT * FROM "personas_default"."identifies" AS "_pw_i" FINAL'
    """
    caps = capabilities(dialect)
    source = table(space, IDENTIFIES)
    source.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
    if caps.upsert is Upsert.REPLACING_MERGE_TREE:
        return exp.Final(this=source)
    return source


def binary_text(dialect: str | Capabilities, expression: exp.Expr) -> exp.Expr:
    """``expression`` compared by code point (``COLLATE`` the warehouse's binary collation).

    Ties between events are broken by message id, so text must order the same on every
    engine as in Python. A warehouse names its binary collation in the
    ``binary_collation`` capability; without one the column's own order is used (binary on
    SQLite, DuckDB, Spark, ClickHouse, and on PostgreSQL databases with a C collation).
    """
    caps = capabilities(dialect)
    if caps.binary_text_type:
        return exp.cast(
            expression, exp.DataType.build(caps.binary_text_type, dialect=caps.sqlglot_dialect)
        )
    collation = caps.binary_collation
    if not collation:
        return expression
    return exp.Collate(this=expression, expression=exp.to_identifier(collation, quoted=True))


def _column(name: str, table_alias: str | None = None) -> exp.Column:
    return exp.column(name, table=table_alias)


def _carries(caps: Capabilities, value: exp.Expr, column_name: str) -> exp.Expr:
    """The row carries the key: a value, or the column named in ``cleared_keys``."""
    marker = exp.Literal.string(f"{CLEARED_DELIMITER}{column_name}{CLEARED_DELIMITER}")
    cleared = exp.GT(
        this=exp.StrPosition(this=_column(CLEARED), substr=marker),
        expression=exp.Literal.number(0),
    )
    return exp.or_(exp.Not(this=exp.Is(this=value, expression=exp.null())), cleared)


UserIds = Iterable[str] | exp.Query
"""Which users: a list of ids, or a query returning one column of ids (a staging table's)."""


def _in_list(expression: exp.Expr, values: list[str] | exp.Query) -> exp.Expr:
    if isinstance(values, exp.Query):
        return exp.In(this=expression, query=exp.Subquery(this=values.copy()))
    return exp.In(this=expression, expressions=[exp.Literal.string(v) for v in values])


def _wanted(user_ids: UserIds | None) -> list[str] | exp.Query | None:
    if user_ids is None or isinstance(user_ids, exp.Query):
        return user_ids
    return sorted(set(user_ids))


def _window(
    function: exp.Expr, partition: Sequence[exp.Expression], order: Sequence[exp.Ordered]
) -> exp.Window:
    return exp.Window(
        this=function,
        partition_by=list(partition),
        order=exp.Order(expressions=list(order)) if order else None,
    )


def counted_events_tree(
    space: Space,
    ts: dt.datetime | None,
    dialect: str | Capabilities,
    known_at: dt.datetime | None = None,
    *,
    user_ids: UserIds | None = None,
    log: exp.Expr | None = None,
) -> exp.Select:
    """Steps 1 and 2 of the plan: the events counted at ``ts``, one row each, with ``rn``.

    ``log``: the rows to read in place of ``identifies``, a relation laid out like it (``id``,
    ``user_id``, ``timestamp``, ``received_at``, ``cleared_keys`` and the key columns) aliased
    :data:`IDENTIFIES_ALIAS`; for example the log as a load is about to leave it.

    Columns: ``_pw_m`` (message id), ``_pw_u``, ``_pw_t``, ``_pw_r``, ``_pw_c``
    (``cleared_keys``), ``_pw_k<i>`` (the key columns in :func:`key_types` order) and
    ``_pw_rn`` (1 = the user's newest counted event).
    """
    caps = capabilities(dialect)
    names = column_names(space, caps)
    keys = list(key_types(space))
    wanted = _wanted(user_ids)

    source = identifies_source(space, caps) if log is None else log.copy()
    dedup = exp.select(
        exp.alias_(_column("id"), MESSAGE),
        exp.alias_(_column("user_id"), USER),
        exp.alias_(_column("timestamp"), TIMESTAMP),
        exp.alias_(_column("received_at"), RECEIVED),
        exp.alias_(_column("cleared_keys"), CLEARED),
        *[exp.alias_(_column(names[key]), _key_alias(i)) for i, key in enumerate(keys)],
        exp.alias_(
            _window(
                exp.RowNumber(),
                [_column("id")],
                [
                    exp.Ordered(this=_column("received_at")),
                    exp.Ordered(this=_column("timestamp")),
                    exp.Ordered(this=binary_text(caps, _column("user_id"))),
                ],
            ),
            COPY_RANK,
        ),
    ).from_(source)
    if wanted is not None:
        ids_of_users = (
            exp.select(_column("id"))
            .from_(table(space, IDENTIFIES))
            .where(_in_list(_column("user_id"), wanted))
        )
        dedup = dedup.where(exp.In(this=_column("id"), query=exp.Subquery(this=ids_of_users)))

    conditions: list[exp.Expr] = [exp.EQ(this=_column(COPY_RANK), expression=exp.Literal.number(1))]
    if ts is not None:
        conditions.append(
            exp.LTE(this=_column(TIMESTAMP), expression=timestamp_literal(caps, ensure_aware(ts)))
        )
    if known_at is not None:
        conditions.append(
            exp.LTE(
                this=_column(RECEIVED),
                expression=timestamp_literal(caps, ensure_aware(known_at, "known_at")),
            )
        )
    if wanted is not None:
        conditions.append(_in_list(_column(USER), wanted))
    columns = [
        exp.column(MESSAGE),
        exp.column(USER),
        exp.column(TIMESTAMP),
        exp.column(RECEIVED),
        exp.column(CLEARED),
        *[exp.column(_key_alias(i)) for i in range(len(keys))],
    ]
    return (
        exp.select(
            *columns,
            exp.alias_(
                _window(
                    exp.RowNumber(),
                    [_column(USER)],
                    [
                        exp.Ordered(this=_column(TIMESTAMP), desc=True),
                        exp.Ordered(this=_column(RECEIVED), desc=True),
                        exp.Ordered(this=binary_text(caps, _column(MESSAGE)), desc=True),
                    ],
                ),
                POSITION,
            ),
        )
        .from_(dedup.subquery("_pw_dedup"))
        .where(exp.and_(*conditions))
    )


def filtered_arg_min(dialect: str | Capabilities) -> bool:
    """Whether the warehouse takes the one-pass plan for steps 3-4: one GROUP BY with
    ``(ARG_MIN({'v': col}, rn) FILTER (WHERE <carries>)).v`` per key (DuckDB).

    Asked of the ``filtered_arg_min`` capability (see docs/sql.md). The plan is equal to the
    portable one: among the rows that carry the key, the one with the smallest position ``rn``
    (the newest by ``(timestamp, received_at, message_id)``; positions are unique per user)
    decides; wrapping the value in a struct keeps a clear (NULL) from being skipped by
    ``ARG_MIN``.
    """
    return capabilities(dialect).filtered_arg_min


def _struct(**fields: exp.Expr) -> exp.Struct:
    return exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier(name), expression=value)
            for name, value in fields.items()
        ]
    )


def _arg_min_tree(space: Space, caps: Capabilities, counted: exp.Select) -> exp.Select:
    names = column_names(space, caps)
    outputs: list[exp.Expr] = [exp.alias_(_column(USER), "id")]
    for i, key in enumerate(key_types(space)):
        newest = exp.Filter(
            this=exp.Anonymous(
                this="ARG_MIN", expressions=[_struct(v=_column(_key_alias(i))), _column(POSITION)]
            ),
            expression=exp.Where(this=_carries(caps, _column(_key_alias(i)), names[key])),
        )
        value = exp.Dot(this=exp.paren(newest), expression=exp.to_identifier("v"))
        outputs.append(exp.alias_(value, names[key]))
    outputs.append(exp.alias_(exp.Max(this=_column(TIMESTAMP)), "timestamp"))
    outputs.append(exp.alias_(exp.Max(this=_column(RECEIVED)), "received_at"))
    return exp.select(*outputs).from_(counted.subquery("_pw_counted")).group_by(_column(USER))


def as_of_tree(
    space: Space,
    ts: dt.datetime | None,
    dialect: str | Capabilities,
    known_at: dt.datetime | None = None,
    *,
    user_ids: UserIds | None = None,
    log: exp.Expr | None = None,
) -> exp.Select:
    """The tree behind :func:`as_of_query` (``log``: see :func:`counted_events_tree`)."""
    caps = capabilities(dialect)
    names = column_names(space, caps)
    types = key_types(space)
    keys = list(types)
    counted = counted_events_tree(space, ts, caps, known_at, user_ids=user_ids, log=log)
    if filtered_arg_min(caps):
        return _arg_min_tree(space, caps, counted)

    decided = exp.select(
        exp.Star(),
        *[
            exp.alias_(
                _window(
                    exp.Min(
                        this=exp.Case(
                            ifs=[
                                exp.If(
                                    this=_carries(caps, _column(_key_alias(i)), names[key]),
                                    true=_column(POSITION),
                                )
                            ]
                        )
                    ),
                    [_column(USER)],
                    [],
                ),
                _first_alias(i),
            )
            for i, key in enumerate(keys)
        ],
    ).from_(counted.subquery("_pw_counted"))

    outputs: list[exp.Expr] = [exp.alias_(_column(USER), "id")]
    for i, key in enumerate(keys):
        trait_type = types[key]
        value_type = trait_type if trait_type is not None else TraitType.BOOLEAN
        candidate = exp.Case(
            ifs=[
                exp.If(
                    this=exp.EQ(this=_column(POSITION), expression=_column(_first_alias(i))),
                    true=encode_for_max(caps, value_type, _column(_key_alias(i))),
                )
            ]
        )
        outputs.append(
            exp.alias_(finish_max(caps, value_type, exp.Max(this=candidate)), names[key])
        )
    outputs.append(exp.alias_(exp.Max(this=_column(TIMESTAMP)), "timestamp"))
    outputs.append(exp.alias_(exp.Max(this=_column(RECEIVED)), "received_at"))
    return exp.select(*outputs).from_(decided.subquery("_pw_decided")).group_by(_column(USER))


def as_of_query(
    space: Space,
    ts: dt.datetime | None,
    dialect: str | Capabilities,
    known_at: dt.datetime | None = None,
    *,
    user_ids: UserIds | None = None,
) -> str:
    """One SELECT returning the ``users`` table as it was at ``ts`` (inclusive).

    One row per user with at least one counted event: ``id``, one column per key (in
    ``space.keys`` order, named by :func:`personas_warehouse.column_name`), ``timestamp`` and
    ``received_at`` (the newest of the counted events). ``ts=None`` has no upper bound (the
    ``users`` table itself); ``known_at`` keeps only events received by then; ``user_ids``
    restricts the rows (used to refresh the users a load touched).

    >>> import datetime as dt
    >>> from personas_warehouse.model import Space, Audience, ComputedTrait
    >>> space = Space(traits=[ComputedTrait("plan")], audiences=[Audience("vip")])
    >>> at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    >>> "'2024-01-01 00:00:00.000000+00:00'" in as_of_query(space, at, "sqlite")
    True
    """
    return render(as_of_tree(space, ts, dialect, known_at, user_ids=user_ids), dialect)


# --------------------------------------------------------------------------------------------
# Audience membership over time
# --------------------------------------------------------------------------------------------


def _audience_column(space: Space, audience: str, caps: Capabilities) -> str:
    if audience not in space.audience_keys:
        raise InvalidSpaceError(
            f"{audience!r} is not a synced audience of this space; known audiences: "
            f"{sorted(space.audience_keys)}"
        )
    return column_names(space, caps)[audience]


def membership_intervals_tree(
    space: Space,
    audience: str,
    dialect: str | Capabilities,
    known_at: dt.datetime | None = None,
) -> exp.Select:
    """The tree behind :func:`membership_intervals_query`."""
    caps = capabilities(dialect)
    column = _audience_column(space, audience, caps)
    keys = list(key_types(space))
    index = keys.index(audience)
    counted = counted_events_tree(space, None, caps, known_at)
    value = encode_for_max(caps, TraitType.BOOLEAN, _column(_key_alias(index)))
    # the events that set this audience, numbered per user in order (oldest first), with
    # an island number: consecutive events with the same value share it
    carrying = (
        exp.select(
            exp.alias_(_column(USER), USER),
            exp.alias_(_column(TIMESTAMP), TIMESTAMP),
            exp.alias_(value, "_pw_v"),
            exp.alias_(
                _window(
                    exp.RowNumber(),
                    [_column(USER)],
                    [exp.Ordered(this=_column(POSITION), desc=True)],
                ),
                "_pw_seq",
            ),
        )
        .from_(counted.subquery("_pw_counted"))
        .where(exp.Not(this=exp.Is(this=_column(_key_alias(index)), expression=exp.null())))
    )
    islands = exp.select(
        exp.Star(),
        exp.alias_(
            exp.Sub(
                this=_column("_pw_seq"),
                expression=_window(
                    exp.RowNumber(),
                    [_column(USER), _column("_pw_v")],
                    [exp.Ordered(this=_column("_pw_seq"))],
                ),
            ),
            "_pw_island",
        ),
    ).from_(carrying.subquery("_pw_carrying"))
    # one row per run of equal values; consecutive runs alternate between entered and exited
    runs = (
        exp.select(
            exp.alias_(_column(USER), USER),
            exp.alias_(_column("_pw_v"), "_pw_v"),
            exp.alias_(exp.Min(this=_column(TIMESTAMP)), "_pw_start"),
            exp.alias_(exp.Min(this=_column("_pw_seq")), "_pw_first"),
        )
        .from_(islands.subquery("_pw_islands"))
        .group_by(_column(USER), _column("_pw_v"), _column("_pw_island"))
    )
    # the start of the next run (a portable LEAD: a one-row frame; NULL after the last run;
    # the CASE makes the value nullable where an empty frame would otherwise give a default)
    next_start = exp.Window(
        this=exp.Min(
            this=exp.Case(
                ifs=[
                    exp.If(
                        this=exp.EQ(this=exp.Literal.number(1), expression=exp.Literal.number(1)),
                        true=_column("_pw_start"),
                    )
                ]
            )
        ),
        partition_by=[_column(USER)],
        order=exp.Order(expressions=[exp.Ordered(this=_column("_pw_first"), nulls_first=True)]),
        spec=exp.WindowSpec(
            kind="ROWS",
            start=exp.Literal.number(1),
            start_side="FOLLOWING",
            end=exp.Literal.number(1),
            end_side="FOLLOWING",
        ),
    )
    bounded = exp.select(
        exp.alias_(_column(USER), USER),
        exp.alias_(_column("_pw_v"), "_pw_v"),
        exp.alias_(_column("_pw_start"), "_pw_start"),
        exp.alias_(next_start, "_pw_next"),
    ).from_(runs.subquery("_pw_runs"))
    del column
    return (
        exp.select(
            exp.alias_(_column(USER), "user_id"),
            exp.alias_(_column("_pw_start"), "entered_at"),
            exp.alias_(_column("_pw_next"), "exited_at"),
        )
        .from_(bounded.subquery("_pw_bounded"))
        .where(exp.EQ(this=_column("_pw_v"), expression=exp.Literal.number(1)))
    )


def membership_intervals_query(
    space: Space,
    audience: str,
    dialect: str | Capabilities,
    known_at: dt.datetime | None = None,
) -> str:
    """One SELECT of every interval a user spent in ``audience``: ``(user_id, entered_at,
    exited_at)``, the interval ``[entered_at, exited_at)``; ``exited_at`` NULL while still in.

    Built from the deduplicated log in event order, so ties and late arrivals count as in
    :func:`as_of_query`; an exit with no entry before it opens no interval. The state at ``t``
    is ``True`` exactly when an interval holds ``t``.

    >>> from personas_warehouse.model import Space, Audience
    >>> "entered_at" in membership_intervals_query(Space(audiences=[Audience("vip")]), "vip",
    ...                                            "duckdb")
    True
    """
    return render(membership_intervals_tree(space, audience, dialect, known_at), dialect)


def audience_size_tree(
    space: Space,
    audience: str,
    times: Sequence[dt.datetime],
    dialect: str | Capabilities,
    known_at: dt.datetime | None = None,
) -> exp.Select:
    """The tree behind :func:`audience_size_query`."""
    caps = capabilities(dialect)
    if not times:
        raise InvalidSpaceError("audience_size_query needs at least one time; pass a list")
    intervals = membership_intervals_tree(space, audience, caps, known_at)
    sizes: list[exp.Expr] = []
    for i, moment in enumerate(times):
        at = timestamp_literal(caps, ensure_aware(moment, "time"))
        inside = exp.and_(
            exp.LTE(this=_column("entered_at"), expression=at),
            exp.or_(
                exp.Is(this=_column("exited_at"), expression=exp.null()),
                exp.GT(this=_column("exited_at"), expression=at.copy()),
            ),
        )
        count = exp.Sum(
            this=exp.Case(
                ifs=[exp.If(this=inside, true=exp.Literal.number(1))],
                default=exp.Literal.number(0),
            )
        )
        sizes.append(
            exp.alias_(exp.Coalesce(this=count, expressions=[exp.Literal.number(0)]), f"size_{i}")
        )
    return exp.select(*sizes).from_(intervals.subquery("_pw_intervals"))


def audience_size_query(
    space: Space,
    audience: str,
    times: Sequence[dt.datetime],
    dialect: str | Capabilities,
    known_at: dt.datetime | None = None,
) -> str:
    """One SELECT returning one row: ``size_<i>`` = the members of ``audience`` at ``times[i]``.

    >>> import datetime as dt
    >>> from personas_warehouse.model import Space, Audience
    >>> sql = audience_size_query(Space(audiences=[Audience("vip")]), "vip",
    ...                           [dt.datetime(2024, 1, 1, tzinfo=dt.UTC)], "postgres")
    >>> '"size_0"' in sql
    True
    """
    return render(audience_size_tree(space, audience, times, dialect, known_at), dialect)
