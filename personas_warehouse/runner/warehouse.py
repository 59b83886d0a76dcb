"""A warehouse to sync into: set it up, sync computed results, read history and state back.

:class:`Warehouse` drives one space's schema on one connection (sqlite3, duckdb, psycopg,
pymysql, chDB or a Spark session, through :func:`~personas_warehouse.runner.connections.
wrap_connection`). What it does, in order:

- :meth:`Warehouse.setup` creates the schema and tables, or brings existing ones up to date by
  reading the warehouse's own catalog: a column that is already there (added by hand, or by an
  earlier version) is seen and kept, a missing one is added. Nothing is ever dropped. On SQLite
  a schema is an attached database: ``setup`` attaches one named like the schema when it is not
  attached yet (in memory for an in-memory main database, else a file beside the main one; see
  ``Connection.create_schema``). Attach your own file first to choose where it lives.
- :meth:`Warehouse.sync` reads what the warehouse holds (the ``users`` rows), plans the changes
  (:func:`personas_warehouse.sync.plan_sync`), writes the events to ``identifies`` and the
  changed users to ``users``, and records the run in ``sync_runs``, all in one transaction where
  the engine has them. Re-running a sync writes nothing.
- :meth:`Warehouse.history` and :meth:`Warehouse.freshness` read ``sync_runs`` back;
  :meth:`Warehouse.snapshot` and :meth:`Warehouse.reconstruct_state` are answered by the
  warehouse (the as-of query); :meth:`Warehouse.load_log` reads ``identifies`` into an
  :class:`IdentifiesLog`.

How rows are written follows the warehouse's ``Upsert`` flag and what the engine answers:
where rows are upserted (ON CONFLICT / ON DUPLICATE KEY), the events and the changed users'
full rows are inserted with parameters, one list per column unnested in SQL where the engine
takes array parameters (asked once by a probe query: DuckDB, PostgreSQL), else multi-row
``VALUES``; elsewhere (ClickHouse's versions, Spark's rebuilt tables) the events go through
:func:`~personas_warehouse.sql.dml.insert_statements`, which refreshes ``users`` from
``identifies`` in the warehouse.

The sync lock (two syncs of one space never interleave): ``sync_runs`` holds one lock row
(``run_id`` :data:`LOCK_RUN_ID`, status ``lock``), made by ``setup``. On an engine with
transactions, a sync's transaction starts by updating that row, which row-locks it until the
transaction ends; the engine releases it when a crashed process's transaction is rolled back, so
a killed sync never leaves a stale lock. What the second sync sees is the engine's: PostgreSQL
and MySQL make it wait for the first to finish (then it plans against the first one's result),
DuckDB refuses the conflicting update at once, SQLite waits for the busy timeout; a refusal is
raised as :class:`~personas_warehouse.errors.SyncInProgressError`. Engines without transactions
(Spark, ClickHouse) get only the in-process lock, per connection and schema: run one sync per
space at a time there (a scheduler's concurrency limit of 1).

>>> import datetime as dt, sqlite3
>>> import personas_warehouse as pw
>>> from personas_warehouse.sync import ComputedResults
>>> space = pw.Space(traits=[pw.ComputedTrait("ltv", pw.TraitType.NUMBER)],
...                  audiences=[pw.Audience("vip")])
>>> wh = Warehouse(sqlite3.connect(":memory:"), space)
>>> wh.setup()
>>> at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
>>> results = ComputedResults(traits={"u1": {"ltv": 2.5}}, audiences={"vip": {"u1"}})
>>> wh.sync(results, at=at).rows_written
2
>>> wh.sync(results, at=at + dt.timedelta(hours=1)).rows_written
0
>>> wh.users()["u1"].audiences
{'vip': True}
>>> [run.status for run in wh.history()]
['succeeded', 'succeeded']
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from itertools import repeat
from types import MappingProxyType
from typing import Any, Final, cast

import attrs
from sqlglot import exp

from personas_warehouse.errors import (
    InvalidSpaceError,
    PersonasWarehouseError,
    SyncInProgressError,
    WarehouseError,
)
from personas_warehouse.log import IdentifiesLog
from personas_warehouse.model import IdentifyEvent, Space, TraitType, UserState, ensure_aware
from personas_warehouse.naming import column_names
from personas_warehouse.runner.connections import Connection, wrap_connection
from personas_warehouse.sql.ddl import create_trees
from personas_warehouse.sql.dml import insert_statements
from personas_warehouse.sql.query import as_of_tree, identifies_source
from personas_warehouse.sql.render import render
from personas_warehouse.sql.tables import (
    CLEARED_DELIMITER,
    IDENTIFIES,
    SYNC_RUNS,
    USERS,
    identifies_columns,
    table,
    users_columns,
)
from personas_warehouse.sql.values import (
    decode_timestamp,
    decode_value,
    json_text,
    parameter_value,
    read_column,
    timestamp_text,
)
from personas_warehouse.sync import Clock, ComputedResults, KeyCounts, SyncPlan, plan_sync, utc_now
from personas_warehouse.warehouses import Capabilities, Upsert, capabilities

__all__ = [
    "LOCK_RUN_ID",
    "MAX_PARAMETERS",
    "Freshness",
    "SyncProgress",
    "SyncResult",
    "SyncRun",
    "Warehouse",
    "parameter_converter",
]

logger = logging.getLogger("personas_warehouse.sync")

LOCK_RUN_ID: Final = "__sync_lock__"
"""The ``run_id`` of the lock row in ``sync_runs`` (status ``lock``; never in :meth:`history`)."""
_LOCK_STATUS: Final = "lock"
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"

MAX_PARAMETERS: Final = 30_000
"""Most values one statement binds (SQLite allows 32,766, PostgreSQL and MySQL 65,535)."""


class _SyncLock:
    """The lock of one (driver connection, schema) in this process, shared by every Warehouse
    over that connection; weakly referenced from :data:`_local_locks`, so it goes with the
    last Warehouse holding it (driver connections such as sqlite3's cannot be weakly
    referenced themselves, and each Warehouse keeps its connection alive, so the id in the
    key is never reused while the entry lives)."""

    __slots__ = ("__weakref__", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()


_local_locks: weakref.WeakValueDictionary[tuple[int, str], _SyncLock] = (
    weakref.WeakValueDictionary()
)
_local_locks_guard = threading.Lock()

_WHOLE_ROW: Final = frozenset({Upsert.REBUILD, Upsert.REPLACING_MERGE_TREE, Upsert.DELETE_INSERT})
"""Strategies that write a users row whole: a column the space does not sync loses its value."""


def _local_lock(conn: Connection, schema: str) -> _SyncLock:
    key = (id(conn.raw), schema)
    with _local_locks_guard:
        found = _local_locks.get(key)
        if found is None:
            found = _local_locks[key] = _SyncLock()
        return found


# --------------------------------------------------------------------------------------------
# Values returned
# --------------------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class SyncRun:
    """One row of ``sync_runs``: a sync that ran."""

    run_id: str
    at: dt.datetime
    """The sync's time (its events' ``timestamp``)."""
    started_at: dt.datetime
    finished_at: dt.datetime | None
    status: str
    """``succeeded`` or ``failed``."""
    rows_written: int | None
    """``identifies`` rows plus ``users`` rows written."""
    counts: Mapping[str, KeyCounts]
    """Per key: entered / exited / changed (empty for a failed run)."""
    error: str | None = None
    """Why a failed run failed."""


@attrs.frozen(slots=True)
class SyncResult:
    """What one :meth:`Warehouse.sync` did."""

    run: SyncRun
    plan: SyncPlan
    events_written: int
    """Rows added to ``identifies``."""
    users_written: int
    """Rows written to ``users``."""

    @property
    def rows_written(self) -> int:
        """``events_written + users_written`` (0 when nothing changed)."""
        return self.events_written + self.users_written


@attrs.frozen(slots=True)
class SyncProgress:
    """A progress report of a running sync (passed to the ``progress`` callback)."""

    run_id: str
    stage: str
    """``read``, ``plan``, ``identifies``, ``users`` or ``done``."""
    done: int
    total: int


@attrs.frozen(slots=True)
class Freshness:
    """How fresh the warehouse is: its latest successful sync."""

    at: dt.datetime
    """The ``at`` of the latest successful sync: the data holds the results as of then."""
    finished_at: dt.datetime
    """When that sync finished writing."""
    run_id: str

    def age(self, now: dt.datetime | None = None) -> dt.timedelta:
        """How old the data is at ``now`` (default: the wall clock)."""
        return ensure_aware(now or utc_now(), "now") - self.at


Progress = Callable[[SyncProgress], None]
"""A progress callback."""

_Times = dict[str, tuple[dt.datetime | None, dt.datetime | None]]
"""Per user: the ``timestamp`` and ``received_at`` of their ``users`` row."""


# --------------------------------------------------------------------------------------------
# Values to and from the engine
# --------------------------------------------------------------------------------------------


def _time(caps: Capabilities, value: Any) -> dt.datetime:
    decoded = decode_timestamp(caps, value)
    if decoded is None:
        raise WarehouseError("a NOT NULL timestamp column of the warehouse holds NULL")
    return decoded


_PLAIN_TYPES: Final[Mapping[TraitType | None, type]] = MappingProxyType(
    {
        None: bool,
        TraitType.BOOLEAN: bool,
        TraitType.INTEGER: int,
        TraitType.NUMBER: float,
        TraitType.STRING: str,
        TraitType.TIMESTAMP: dt.datetime,
    }
)
"""Per trait type, the Python type a value read back needs no conversion from."""

_PROBE_TIME: Final = dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)


def parameter_converter(caps: Capabilities, trait_type: TraitType | None) -> Callable[[Any], Any]:
    """A fast equivalent of :func:`parameter_value` for one column (``trait_type`` ``None``: a
    system timestamp): the conversion is chosen once, by asking ``parameter_value`` about a
    sample, instead of per value.

    >>> convert = parameter_converter(capabilities("sqlite"), None)
    >>> convert(dt.datetime(2024, 1, 1, tzinfo=dt.UTC)), convert(None)
    ('2024-01-01 00:00:00.000000+00:00', None)
    """
    if trait_type is None or trait_type is TraitType.TIMESTAMP:
        sample = parameter_value(caps, trait_type, _PROBE_TIME)
        if isinstance(sample, str):
            return lambda v: None if v is None else timestamp_text(v)
        if sample.tzinfo is None:
            return lambda v: None if v is None else v.astimezone(dt.UTC).replace(tzinfo=None)
        return lambda v: None if v is None else v.astimezone(dt.UTC)
    if trait_type is TraitType.JSON:
        return lambda v: None if v is None else json_text(v)
    if trait_type is TraitType.NUMBER:
        return lambda v: None if v is None else float(v)
    if trait_type is TraitType.BOOLEAN and not isinstance(
        parameter_value(caps, trait_type, True), bool
    ):
        return lambda v: None if v is None else int(v)
    return lambda v: v


_PARAM: Final = "_pw_param_"
"""Stands for a parameter in a tree; replaced by the driver's placeholder after rendering
(sqlglot writes ``exp.Placeholder`` as ``{?: }`` for ClickHouse)."""


def _param() -> exp.Expression:
    return exp.var(_PARAM)


# --------------------------------------------------------------------------------------------
# The warehouse
# --------------------------------------------------------------------------------------------


class Warehouse:
    """One space's schema in one warehouse (see the module docs).

    ``connection`` is a DB-API connection (sqlite3, duckdb, psycopg, pymysql, chDB), a Spark
    session, or a :class:`Connection`; ``dialect`` defaults to the connection's engine.
    The connection is not closed by the warehouse.
    """

    def __init__(
        self,
        connection: Any,
        space: Space,
        dialect: str | None = None,
        *,
        batch_rows: int = 5000,
    ) -> None:
        self.connection: Connection = (
            connection if isinstance(connection, Connection) else wrap_connection(connection)
        )
        if not isinstance(space, Space):
            raise InvalidSpaceError(f"Warehouse takes a Space, got {type(space).__name__}")
        self.space = space
        self.caps: Capabilities = capabilities(dialect or self.connection.kind)
        self.batch_rows = batch_rows
        self._columns = column_names(space, self.caps)
        self._types: dict[str, TraitType | None] = {
            **{k: space.trait_types[k] for k in space.trait_keys},
            **dict.fromkeys(space.audience_keys),
        }
        self._convert = {
            k: parameter_converter(self.caps, TraitType.BOOLEAN if t is None else t)
            for k, t in self._types.items()
        }
        self._convert_time = parameter_converter(self.caps, None)
        self._column_types = {
            name: {c.name: c.type for c in columns}
            for name, columns in (
                (IDENTIFIES, identifies_columns(space, self.caps)),
                (USERS, users_columns(space, self.caps)),
            )
        }
        self._array_parameters: bool | None = None
        self._lock = _local_lock(self.connection, space.schema)
        self._statements: dict[tuple[Any, ...], str] = {}

    def __repr__(self) -> str:
        return (
            f"<Warehouse schema={self.space.schema!r} dialect={self.caps.sqlglot_dialect!r} "
            f"connection={self.connection.kind}>"
        )

    # -- SQL helpers -------------------------------------------------------------------------

    def _sql(self, tree: exp.Expression) -> str:
        sql = render(tree, self.caps)
        if _PARAM in sql:
            if self.connection.paramstyle == "format":
                sql = sql.replace("%", "%%")
            sql = sql.replace(_PARAM, self.connection.placeholder)
        return sql

    def _table(self, name: str) -> exp.Table:
        return table(self.space, name)

    def _execute(self, tree: exp.Expression, params: Sequence[Any] | None = None) -> None:
        self.connection.execute(self._sql(tree), params)

    def _query(
        self, tree: exp.Expression, params: Sequence[Any] | None = None
    ) -> list[tuple[Any, ...]]:
        return self.connection.query(self._sql(tree), params)

    def _insert(
        self, name: str, columns: Sequence[str], *, update: Sequence[str] | None, rows: int = 1
    ) -> exp.Insert:
        """``INSERT`` of ``rows`` rows of placeholders; on a duplicate id, update ``update`` (or
        keep the stored row when ``update`` is None)."""
        values = exp.Values(
            expressions=[exp.Tuple(expressions=[_param() for _ in columns]) for _ in range(rows)]
        )
        target = exp.Schema(
            this=self._table(name), expressions=[exp.to_identifier(c) for c in columns]
        )
        tree = exp.Insert(this=target, expression=values)
        upsert = self.caps.upsert
        if upsert is Upsert.ON_CONFLICT:
            if update:
                sets = [
                    exp.EQ(this=exp.column(c), expression=exp.column(c, table="excluded"))
                    for c in update
                ]
                tree.set(
                    "conflict",
                    exp.OnConflict(
                        conflict_keys=[exp.to_identifier(columns[0])],
                        action=exp.var("DO UPDATE"),
                        expressions=sets,
                    ),
                )
            else:
                tree.set(
                    "conflict",
                    exp.OnConflict(
                        conflict_keys=[exp.to_identifier(columns[0])],
                        action=exp.var("DO NOTHING"),
                    ),
                )
        elif upsert is Upsert.ON_DUPLICATE_KEY:
            targets = update or [columns[0]]
            sets = [
                exp.EQ(
                    this=exp.column(c),
                    expression=exp.Anonymous(this="VALUES", expressions=[exp.column(c)]),
                )
                for c in targets
            ]
            tree.set(
                "conflict",
                exp.OnConflict(duplicate=True, action=exp.var("UPDATE"), expressions=sets),
            )
        return tree

    # -- setup -------------------------------------------------------------------------------

    def setup(self) -> None:
        """Create the schema and tables, or add what is missing, as the catalog reports them.

        Idempotent: a second call runs no DDL. Columns the warehouse has and the Space does not
        (added by hand, or for a key no longer synced) are kept.
        """
        conn = self.connection
        schema = self.space.schema
        try:
            if not self.caps.schemas:
                conn.create_schema(schema)  # SQLite: ATTACH a database named like the schema
            statements: list[str] = []
            for tree in create_trees(self.space, self.caps):
                if tree.kind != "TABLE":
                    statements.append(render(tree, self.caps))
                    continue
                target = tree.find(exp.Table)
                assert target is not None
                statements.extend(self._table_statements(tree, target.name))
            for sql in statements:
                logger.info("setup %s: %s", schema, sql)
                conn.execute(sql)
            if self._uses_lock_row:
                self._ensure_lock_row()
            if self._row_level:
                self._uses_array_parameters()
        except PersonasWarehouseError:
            raise
        except Exception as err:
            raise WarehouseError(
                f"setting up schema {schema!r} failed: {err}; check the connection's rights "
                "to create schemas and tables"
            ) from err

    def _table_statements(self, tree: exp.Create, name: str) -> list[str]:
        existing = self.connection.columns(self.space.schema, name)
        if not existing:
            return [render(tree, self.caps)]
        have = {c.lower() for c in existing}
        schema_node = tree.this
        statements = []
        for definition in schema_node.expressions:
            if not isinstance(definition, exp.ColumnDef) or definition.name.lower() in have:
                continue
            nullable = definition.copy()
            nullable.set("constraints", None)  # an added column starts empty: no NOT NULL
            add = exp.Alter(this=self._table(name), kind="TABLE", actions=[nullable])
            statements.append(render(add, self.caps))
        return statements

    @property
    def _row_level(self) -> bool:
        """Rows are upserted one by one with parameters (ON CONFLICT / ON DUPLICATE KEY);
        otherwise the statements of :func:`insert_statements` write the events and refresh
        ``users`` from ``identifies``."""
        return self.caps.upsert in (Upsert.ON_CONFLICT, Upsert.ON_DUPLICATE_KEY)

    @property
    def _uses_lock_row(self) -> bool:
        return self.connection.supports_transactions and self.caps.transactions

    def _ensure_lock_row(self) -> None:
        runs = self._table(SYNC_RUNS)
        found = self._query(
            exp.select("run_id").from_(runs).where(exp.column("run_id").eq(_param())),
            [LOCK_RUN_ID],
        )
        if found:
            return
        insert = self._insert(SYNC_RUNS, ["run_id", "at", "started_at", "status"], update=None)
        self._execute(insert, [LOCK_RUN_ID, _EPOCH, _EPOCH, _LOCK_STATUS])

    def _take_lock(self, now: dt.datetime) -> None:
        update = exp.update(self._table(SYNC_RUNS), {"finished_at": _param()}).where(
            exp.column("run_id").eq(_param())
        )
        try:
            self._execute(update, [now, LOCK_RUN_ID])
        except Exception as err:
            raise SyncInProgressError(
                f"another sync of schema {self.space.schema!r} holds the sync lock ({err}); "
                "wait for it to finish and run this sync again"
            ) from err

    def _check_setup(self) -> None:
        if not self._row_level and not self.space.sync_identifies:
            raise WarehouseError(
                f"on {self.caps.sqlglot_dialect} (rows replaced by {self.caps.upsert.value}) the "
                "users table is rebuilt from identifies, so a space with sync_identifies=False "
                "cannot be synced there; sync identifies too"
            )
        for name in self._synced_tables():
            found = list(self.connection.columns(self.space.schema, name))
            have = {c.lower() for c in found}
            if not have:
                raise WarehouseError(
                    f"table {self.space.schema}.{name} does not exist; call Warehouse.setup() first"
                )
            if name == SYNC_RUNS:
                continue
            missing = sorted(c for c in self._columns.values() if c.lower() not in have)
            if missing:
                raise WarehouseError(
                    f"table {self.space.schema}.{name} has no column(s) {missing}; call "
                    "Warehouse.setup() to add them"
                )
            if name == USERS and self.caps.upsert in _WHOLE_ROW:
                known = {c.lower() for c in self._column_types[USERS]}
                extra = sorted(c for c in found if c.lower() not in known)
                if extra:
                    raise WarehouseError(
                        f"table {self.space.schema}.users has column(s) {extra} the space does "
                        f"not sync; on {self.caps.sqlglot_dialect} users rows are replaced "
                        f"whole ({self.caps.upsert.value}), so a sync would lose their values: "
                        "drop them, or keep that data in a table of its own"
                    )

    def _synced_tables(self) -> list[str]:
        names = []
        if self.space.sync_identifies:
            names.append(IDENTIFIES)
        if self.space.sync_users:
            names.append(USERS)
        names.append(SYNC_RUNS)
        return names

    # -- reading state -----------------------------------------------------------------------

    def _select_key(self, key: str) -> exp.Expr:
        return read_column(self.caps, self._types[key], exp.column(self._columns[key]))

    def _states(self, select: exp.Select) -> tuple[dict[str, UserState], _Times]:
        """Run a SELECT of ``id``, every key, ``timestamp``, ``received_at``; decode it.

        Decoded column by column: a column whose values all came back as the right Python
        type (or NULL) is kept as it is, so the common case costs C-level loops only."""
        rows = self._query(select)
        if not rows:
            return {}, {}
        trait_keys = self.space.trait_keys
        audience_keys = self.space.audience_keys
        kinds: list[TraitType | None] = [
            *[self._types[k] for k in trait_keys],
            *[None for _ in audience_keys],
            TraitType.TIMESTAMP,
            TraitType.TIMESTAMP,
        ]
        columns = list(zip(*rows, strict=True))
        user_ids = columns[0]
        decoded = [
            self._decode_column(kind, column)
            for kind, column in zip(kinds, columns[1:], strict=True)
        ]
        n_traits = len(trait_keys)
        n_keys = n_traits + len(audience_keys)
        trait_rows = zip(*decoded[:n_traits], strict=True) if n_traits else repeat(())
        audience_rows = zip(*decoded[n_traits:n_keys], strict=True) if audience_keys else repeat(())
        states = {
            user_id: UserState(
                user_id,
                dict(zip(trait_keys, t, strict=True)),
                dict(zip(audience_keys, a, strict=True)),
            )
            for user_id, t, a in zip(user_ids, trait_rows, audience_rows, strict=False)
        }
        times: _Times = dict(zip(user_ids, zip(decoded[-2], decoded[-1], strict=True), strict=True))
        return states, times

    def _decode_column(self, kind: TraitType | None, column: Sequence[Any]) -> Sequence[Any]:
        plain = _PLAIN_TYPES.get(kind)
        if plain is not None and set(map(type, column)) <= {plain, type(None)}:
            if plain is not dt.datetime:
                return column
            if all(v is None or v.tzinfo is dt.UTC for v in column):
                return column
        return list(map(self._decoder(kind), column))

    def _decoder(self, trait_type: TraitType | None) -> Callable[[Any], Any]:
        """Read one column's values: the common case (the driver gave the right Python type)
        at once, anything else through :func:`decode_value`."""
        caps = self.caps
        plain = _PLAIN_TYPES.get(trait_type)

        def decode(raw: Any) -> Any:
            if raw is None or type(raw) is plain:
                return raw
            if trait_type is TraitType.JSON and type(raw) is str:
                return json.loads(raw)
            if plain is dt.datetime and isinstance(raw, dt.datetime) and raw.tzinfo is dt.UTC:
                return raw
            return decode_value(caps, trait_type, raw)

        return decode

    def _read_users(self) -> tuple[dict[str, UserState], _Times]:
        """The ``users`` rows: every user's state, and their (timestamp, received_at)."""
        select = exp.select(
            exp.column("id"),
            *[self._select_key(k) for k in self.space.keys],
            exp.column("timestamp"),
            exp.column("received_at"),
        ).from_(self._table(USERS))
        return self._states(select)

    def _as_of(
        self,
        ts: dt.datetime | None,
        known_at: dt.datetime | None = None,
        user_ids: Sequence[str] | None = None,
    ) -> tuple[dict[str, UserState], _Times]:
        """The state the warehouse rebuilds from ``identifies`` (the as-of query), decoded."""
        if not self.space.sync_identifies:
            raise WarehouseError(
                f"space {self.space.schema!r} does not sync the identifies table "
                "(sync_identifies=False): history cannot be rebuilt; read users() instead"
            )
        inner = as_of_tree(self.space, ts, self.caps, known_at, user_ids=user_ids)
        select = exp.select(
            exp.column("id"),
            *[self._select_key(k) for k in self.space.keys],
            exp.column("timestamp"),
            exp.column("received_at"),
        ).from_(inner.subquery("_pw_as_of"))
        return self._states(select)

    def users(self) -> dict[str, UserState]:
        """What the ``users`` table holds: user id -> state (every synced key).

        Where rows are versions (ClickHouse) or the table is rebuilt (Spark), the same state
        is read through the as-of query, which is what the table holds by construction.
        """
        if not self.space.sync_users:
            raise WarehouseError(
                f"space {self.space.schema!r} does not sync the users table (sync_users=False); "
                "use snapshot() or load_log()"
            )
        return self._held_state()[0]

    def _held_state(self) -> tuple[dict[str, UserState], _Times]:
        if self.space.sync_users and self._row_level:
            return self._read_users()
        return self._as_of(None)

    def snapshot(
        self, ts: dt.datetime, known_at: dt.datetime | None = None
    ) -> dict[str, UserState]:
        """Every user's state at ``ts`` (inclusive), as the warehouse rebuilds it from
        ``identifies`` with the as-of query; ``known_at`` keeps only events received by then.
        """
        at = ensure_aware(ts, "ts")
        known = None if known_at is None else ensure_aware(known_at, "known_at")
        return self._as_of(at, known)[0]

    def reconstruct_state(
        self, user_id: str, ts: dt.datetime, known_at: dt.datetime | None = None
    ) -> UserState:
        """One user's state at ``ts``, answered by the warehouse (the as-of query restricted to
        the user). A user with no event counted is all ``None``."""
        at = ensure_aware(ts, "ts")
        known = None if known_at is None else ensure_aware(known_at, "known_at")
        states = self._as_of(at, known, [user_id])[0]
        return states.get(user_id) or UserState.empty(self.space, user_id)

    def load_log(self) -> IdentifiesLog:
        """Every event ``identifies`` holds, as an :class:`IdentifiesLog` (explicit clears,
        recorded in ``cleared_keys``, come back as explicit ``None`` values)."""
        if not self.space.sync_identifies:
            raise WarehouseError(
                f"space {self.space.schema!r} does not sync the identifies table "
                "(sync_identifies=False): there is no log to load"
            )
        keys = self.space.keys
        select = exp.select(
            exp.column("id"),
            exp.column("user_id"),
            exp.column("timestamp"),
            exp.column("received_at"),
            exp.column("cleared_keys"),
            *[self._select_key(k) for k in keys],
        ).from_(identifies_source(self.space, self.caps))
        columns = self.connection.query_columns(self._sql(select))
        if not columns:
            return IdentifiesLog(self.space)
        # Decoded column by column (C-level when the driver gave the right types), then
        # handed to the log as columns: no event object is made (IdentifiesLog.from_columns).
        ids, user_ids, cleared_column = columns[0], columns[1], columns[4]
        stamps = self._times(columns[2])
        received = self._times(columns[3])
        values_columns = [
            self._decode_column(self._types[key], column)
            for key, column in zip(keys, columns[5:], strict=True)
        ]
        del columns
        by_column = {self._columns[k]: k for k in keys}
        cleared = [
            None
            if not text
            else [
                by_column[column]
                for column in text.strip(CLEARED_DELIMITER).split(CLEARED_DELIMITER)
                if column in by_column
            ]
            for text in cleared_column
        ]
        return IdentifiesLog.from_columns(
            self.space,
            message_id=ids,
            user_id=user_ids,
            timestamp=stamps,
            received_at=received,
            values=dict(zip(keys, values_columns, strict=True)),
            cleared=cleared,
        )

    def _times(self, column: Sequence[Any]) -> Sequence[dt.datetime]:
        """A NOT NULL timestamp column read back, as aware UTC datetimes."""
        decoded = self._decode_column(TraitType.TIMESTAMP, column)
        if None in decoded:
            raise WarehouseError("a NOT NULL timestamp column of the warehouse holds NULL")
        return cast("Sequence[dt.datetime]", decoded)

    # -- history -----------------------------------------------------------------------------

    def history(self) -> list[SyncRun]:
        """Every recorded sync run, oldest first."""
        runs = self._table(SYNC_RUNS)
        select = (
            exp.select(
                "run_id", "at", "started_at", "finished_at", "status", "rows_written", "counts"
            )
            .from_(runs)
            .where(exp.column("status").neq(_param()))
            .order_by("started_at", "run_id")
        )
        result = []
        for row in self._query(select, [_LOCK_STATUS]):
            counts_doc = json.loads(row[6]) if row[6] else {}
            error = counts_doc.pop("__error__", None) if isinstance(counts_doc, dict) else None
            counts = {
                key: KeyCounts(**value)
                for key, value in counts_doc.items()
                if isinstance(value, dict)
            }
            result.append(
                SyncRun(
                    row[0],
                    _time(self.caps, row[1]),
                    _time(self.caps, row[2]),
                    decode_timestamp(self.caps, row[3]),
                    row[4],
                    None if row[5] is None else int(row[5]),
                    MappingProxyType(counts),
                    error,
                )
            )
        return result

    def freshness(self) -> Freshness | None:
        """The latest successful sync (by ``at``), or ``None`` before the first one."""
        done = [run for run in self.history() if run.status == SUCCEEDED]
        if not done:
            return None
        latest = max(done, key=lambda run: (run.at, run.finished_at or run.started_at))
        assert latest.finished_at is not None
        return Freshness(latest.at, latest.finished_at, latest.run_id)

    def _record(self, run: SyncRun) -> None:
        columns = ["run_id", "at", "started_at", "finished_at", "status", "rows_written", "counts"]
        insert = self._insert(SYNC_RUNS, columns, update=columns[1:])
        doc: dict[str, Any] = {key: counts.as_dict() for key, counts in run.counts.items()}
        if run.error is not None:
            doc["__error__"] = run.error
        params = [
            run.run_id,
            run.at,
            run.started_at,
            run.finished_at,
            run.status,
            run.rows_written,
            json.dumps(doc, ensure_ascii=False, sort_keys=True),
        ]
        self._execute(insert, params)

    # -- sync --------------------------------------------------------------------------------

    def sync(
        self,
        computed: ComputedResults,
        *,
        at: dt.datetime,
        clock: Clock | None = None,
        progress: Progress | None = None,
    ) -> SyncResult:
        """Bring the warehouse to ``computed`` as of ``at``: write only the changes.

        ``clock`` gives ``received_at`` and the run's start and finish times (default: the wall
        clock in UTC). ``progress`` is called at each stage and every ``batch_rows`` rows.
        Raises :class:`SyncInProgressError` when another sync holds the lock, and
        :class:`WarehouseError` (the engine's error chained) when the warehouse fails; the
        failed run is recorded in ``sync_runs`` when the warehouse still answers.
        """
        at = ensure_aware(at, "sync time `at`")
        now = clock or utc_now
        run_id = f"run_{uuid.uuid4().hex}"
        started_at = ensure_aware(now(), "the clock's time")
        report = _Reporter(run_id, progress)
        logger.info("sync %s of %s at %s: started", run_id, self.space.schema, at.isoformat())
        if not self._lock.lock.acquire(blocking=False):
            raise SyncInProgressError(
                f"a sync of schema {self.space.schema!r} is already running on this connection; "
                "wait for it to finish"
            )
        try:
            try:
                self._check_setup()
                if self._row_level:
                    self._uses_array_parameters()  # probe now: not inside the transaction
            except PersonasWarehouseError:
                raise
            except Exception as err:
                raise WarehouseError(
                    f"sync {run_id} of schema {self.space.schema!r} could not read the "
                    f"warehouse before writing anything: {type(err).__name__}: {err}; check the "
                    "connection and run the same sync again"
                ) from err
            try:
                with self.connection.transaction():
                    result = self._sync_in_transaction(
                        run_id, computed, at=at, started_at=started_at, now=now, report=report
                    )
            except PersonasWarehouseError as err:
                self._record_failure(run_id, at, started_at, now, err)
                raise
            except Exception as err:
                self._record_failure(run_id, at, started_at, now, err)
                raise WarehouseError(
                    f"sync {run_id} of schema {self.space.schema!r} failed and was rolled back "
                    f"where the engine has transactions: {type(err).__name__}: {err}; fix the "
                    "cause and run the same sync again (it writes only what is missing)"
                ) from err
        finally:
            self._lock.lock.release()
        report("done", result.rows_written, result.rows_written)
        logger.info(
            "sync %s of %s: %d events, %d users written in %.2fs",
            run_id,
            self.space.schema,
            result.events_written,
            result.users_written,
            (result.run.finished_at or started_at).timestamp() - started_at.timestamp(),
        )
        return result

    def _sync_in_transaction(
        self,
        run_id: str,
        computed: ComputedResults,
        *,
        at: dt.datetime,
        started_at: dt.datetime,
        now: Clock,
        report: _Reporter,
    ) -> SyncResult:
        if self._uses_lock_row:
            self._take_lock(started_at)
        self._check_not_behind(at)
        report("read", 0, 0)
        previous, times = self._held_state()
        report("plan", len(previous), len(previous))
        versions = {user_id: held[1] for user_id, held in times.items() if held[1] is not None}
        plan = plan_sync(self.space, previous, computed, at, clock=now, versions=versions)
        logger.info(
            "sync %s: %d users held, %d changed (%s)",
            run_id,
            len(previous),
            plan.users_changed,
            plan.totals.as_dict(),
        )
        events_written = 0
        users_written = 0
        if not self._row_level:
            events_written, users_written = self._write_statements(plan, report)
        else:
            if self.space.sync_identifies and plan.events:
                events_written = self._write_events(plan, report)
            if self.space.sync_users and plan.states:
                users_written = self._write_users(plan, times, report)
        finished_at = ensure_aware(now(), "the clock's time")
        rows = events_written + users_written
        run = SyncRun(
            run_id,
            at,
            started_at,
            finished_at,
            SUCCEEDED,
            rows,
            MappingProxyType(dict(plan.counts)),
        )
        self._record(run)
        return SyncResult(run, plan, events_written, users_written)

    def _check_not_behind(self, at: dt.datetime) -> None:
        fresh = self.freshness()
        if fresh is not None and at < fresh.at:
            raise WarehouseError(
                f"sync time {at.isoformat()} is before the latest successful sync "
                f"({fresh.at.isoformat()}, run {fresh.run_id}); syncs move forward in time: "
                "sync at a later time, or re-run that sync with the same `at`"
            )

    def _record_failure(
        self, run_id: str, at: dt.datetime, started_at: dt.datetime, now: Clock, err: BaseException
    ) -> None:
        if isinstance(err, SyncInProgressError):
            return  # not a run: the lock holder is the run
        try:
            finished_at = ensure_aware(now(), "the clock's time")
            error = f"{type(err).__name__}: {err}"[:2000]
            self._record(SyncRun(run_id, at, started_at, finished_at, FAILED, None, {}, error))
        except Exception:  # the warehouse may be gone (that may be why the sync failed)
            logger.warning("sync %s failed and could not be recorded", run_id, exc_info=True)

    def _new_events(self, plan: SyncPlan) -> list[IdentifyEvent]:
        """The plan's events ``identifies`` does not hold yet.

        Only a retry of a run that wrote part of its events can find some there, and only on
        an engine without transactions: elsewhere a run commits whole or not at all, and the
        ids of a new plan (which hash the held row's version) are new. The inserts skip a
        known id anyway (``DO NOTHING``)."""
        if self._uses_lock_row:
            return list(plan.events)
        existing = self._existing_ids([e.message_id for e in plan.events])
        return [e for e in plan.events if e.message_id not in existing]

    def _write_statements(self, plan: SyncPlan, report: _Reporter) -> tuple[int, int]:
        """Write through :func:`insert_statements`: the events, then ``users`` refreshed from
        ``identifies`` by the warehouse (its rows are versions, or the table is rebuilt)."""
        events = self._new_events(plan)
        users = len(plan.states) if self.space.sync_users else 0
        total = len(events)
        report("identifies", 0, total)
        for start in range(0, total, self.batch_rows):
            batch = events[start : start + self.batch_rows]
            for sql in insert_statements(self.space, batch, self.caps, now=utc_now()):
                self.connection.execute(sql)
            report("identifies", start + len(batch), total)
        report("users", users, users)
        return total, users

    def _write_events(self, plan: SyncPlan, report: _Reporter) -> int:
        keys = self.space.keys
        columns = [
            "id",
            "user_id",
            "timestamp",
            "received_at",
            "uuid_ts",
            "cleared_keys",
            *[self._columns[k] for k in keys],
        ]
        convert_time = self._convert_time
        converters = [self._convert[k] for k in keys]
        loaded = convert_time(utc_now())
        rows = []
        for event in self._new_events(plan):
            values = event.values
            cleared = [self._columns[k] for k, v in values.items() if v is None]
            cleared_text = (
                CLEARED_DELIMITER + CLEARED_DELIMITER.join(cleared) + CLEARED_DELIMITER
                if cleared
                else None
            )
            rows.append(
                [
                    event.message_id,
                    event.user_id,
                    convert_time(event.timestamp),
                    convert_time(event.received_at),
                    loaded,
                    cleared_text,
                    *[convert(values.get(k)) for k, convert in zip(keys, converters, strict=True)],
                ]
            )
        self._write_rows(IDENTIFIES, columns, rows, update=None, stage="identifies", report=report)
        return len(rows)

    def _write_users(self, plan: SyncPlan, times: _Times, report: _Reporter) -> int:
        keys = self.space.keys
        columns = ["id", *[self._columns[k] for k in keys], "timestamp", "received_at", "uuid_ts"]
        convert_time = self._convert_time
        converters = [self._convert[k] for k in keys]
        loaded = convert_time(utc_now())
        rows = []
        for user_id, state in plan.states.items():
            held_ts, held_received = times.get(user_id, (None, None))
            timestamp = plan.at if held_ts is None else max(held_ts, plan.at)
            received = (
                plan.received_at if held_received is None else max(held_received, plan.received_at)
            )
            values = {**state.traits, **state.audiences}
            rows.append(
                [
                    user_id,
                    *[convert(values[k]) for k, convert in zip(keys, converters, strict=True)],
                    convert_time(timestamp),
                    convert_time(received),
                    loaded,
                ]
            )
        self._write_rows(USERS, columns, rows, update=columns[1:], stage="users", report=report)
        return len(rows)

    def _existing_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of the message ``ids`` ``identifies`` already holds (read in batches)."""
        found: set[str] = set()
        size = max(1, min(self.batch_rows, 1000))
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            select = (
                exp.select("id")
                .from_(self._table(IDENTIFIES))
                .where(exp.column("id").isin(*[_param() for _ in chunk]))
            )
            found.update(row[0] for row in self._query(select, chunk))
        return found

    def _write_rows(
        self,
        name: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        update: Sequence[str] | None,
        stage: str,
        report: _Reporter,
    ) -> None:
        """Insert ``rows`` as multi-row ``INSERT ... VALUES`` statements with parameters.

        Many rows per statement is what makes bulk writes fast on every engine (DuckDB runs an
        ``executemany`` row by row: ~100x slower); a statement binds at most
        :data:`MAX_PARAMETERS` values.
        """
        total = len(rows)
        report(stage, 0, total)
        if self._uses_array_parameters():
            self._write_columns(name, columns, rows, update=update, stage=stage, report=report)
            return
        per_statement = max(1, min(self.batch_rows, MAX_PARAMETERS // max(1, len(columns))))
        start = 0
        for size in _statement_sizes(total, per_statement):
            batch = rows[start : start + size]
            sql = self._insert_sql(
                name,
                columns,
                update,
                size,
                partial(self._insert, name, columns, update=update, rows=size),
            )
            self.connection.execute(sql, [value for row in batch for value in row])
            start += size
            report(stage, start, total)

    def _insert_sql(
        self,
        name: str,
        columns: Sequence[str],
        update: Sequence[str] | None,
        shape: int | str,
        build: Callable[[], exp.Insert],
    ) -> str:
        """The rendered insert of ``shape`` (rows per statement, or ``"arrays"``), built once
        per table, columns and update list, then reused."""
        key = (name, tuple(columns), None if update is None else tuple(update), shape)
        sql = self._statements.get(key)
        if sql is None:
            sql = self._statements[key] = self._sql(build())
        return sql

    def _write_columns(
        self,
        name: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        update: Sequence[str] | None,
        stage: str,
        report: _Reporter,
    ) -> None:
        """Insert ``rows`` as one array parameter per column:
        ``INSERT ... SELECT UNNEST(CAST(? AS type[])), ...`` (one statement shape for any
        number of rows; binding a few lists is ~10x faster than binding every value)."""
        sql = self._insert_sql(
            name, columns, update, "arrays", partial(self._insert_arrays, name, columns, update)
        )
        size = max(1, self.batch_rows)
        total = len(rows)
        for start in range(0, total, size):
            batch = rows[start : start + size]
            self.connection.execute(sql, [list(column) for column in zip(*batch, strict=True)])
            report(stage, start + len(batch), total)

    def _insert_arrays(
        self, name: str, columns: Sequence[str], update: Sequence[str] | None
    ) -> exp.Insert:
        types = self._column_types[name]
        dialect = self.caps.sqlglot_dialect
        unnested = [
            exp.alias_(
                exp.Unnest(
                    expressions=[
                        exp.cast(
                            _param(),
                            exp.DataType(
                                this=exp.DataType.Type.ARRAY,
                                expressions=[exp.DataType.build(types[c], dialect=dialect)],
                                nested=True,
                            ),
                        )
                    ]
                ),
                c,
            )
            for c in columns
        ]
        source = exp.select(*[exp.column(c) for c in columns]).from_(
            exp.select(*unnested).subquery("_pw_rows")
        )
        tree = self._insert(name, columns, update=update)
        tree.set("expression", source)
        return tree

    def _uses_array_parameters(self) -> bool:
        """Whether the engine takes a list as a parameter and unnests it (asked once, by
        running a probe outside any transaction, in :meth:`setup` or before a sync)."""
        if self._array_parameters is None:
            if self.connection.in_transaction:
                return False  # a failed probe would abort the caller's transaction
            probe = exp.select(
                exp.Unnest(
                    expressions=[
                        exp.cast(
                            _param(),
                            exp.DataType(
                                this=exp.DataType.Type.ARRAY,
                                expressions=[
                                    exp.DataType.build(
                                        self.caps.string_type, dialect=self.caps.sqlglot_dialect
                                    )
                                ],
                                nested=True,
                            ),
                        )
                    ]
                )
            )
            try:
                got = self.connection.query(self._sql(probe), [["a", "b"]])
            except Exception:  # no arrays here: the probe is allowed to fail
                got = []
            self._array_parameters = [tuple(r) for r in got] == [("a",), ("b",)]
            logger.debug("array parameters on %s: %s", self.caps.sqlglot_dialect, got)
        return self._array_parameters


def _statement_sizes(total: int, per_statement: int) -> list[int]:
    """Rows per statement: full statements, then the rest in powers of two, so a handful of
    statement shapes serve every sync (each is built and rendered once per Warehouse).

    >>> _statement_sizes(2 * 100 + 13, 100)
    [100, 100, 8, 4, 1]
    """
    sizes = [per_statement] * (total // per_statement)
    rest = total % per_statement
    bit = 1 << max(0, rest.bit_length() - 1)
    while rest:
        if rest >= bit:
            sizes.append(bit)
            rest -= bit
        bit >>= 1
    return sizes


class _Reporter:
    """Calls the progress callback and logs every stage."""

    def __init__(self, run_id: str, progress: Progress | None) -> None:
        self.run_id = run_id
        self.progress = progress
        self.started = time.monotonic()

    def __call__(self, stage: str, done: int, total: int) -> None:
        logger.debug(
            "sync %s: %s %d/%d (%.2fs)",
            self.run_id,
            stage,
            done,
            total,
            time.monotonic() - self.started,
        )
        if self.progress is not None:
            self.progress(SyncProgress(self.run_id, stage, done, total))
