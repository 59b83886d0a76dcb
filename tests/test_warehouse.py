"""Warehouse on real engines: setup from the catalog, syncs, history, selective sync, locks.

Every test reads rows back from the engine.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from engines import temporary_schema
from sync_worker import Simulation, received, run_time, simulation_space

import personas_warehouse as pw
from personas_warehouse.errors import InvalidEventError, SyncInProgressError, WarehouseError
from personas_warehouse.runner.connections import Connection, connect_url
from personas_warehouse.runner.warehouse import (
    LOCK_RUN_ID,
    SyncProgress,
    Warehouse,
)
from personas_warehouse.sync import ComputedResults, KeyCounts, same_value
from personas_warehouse.warehouses import Upsert, capabilities

T0 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)

SPACE_KW: dict[str, Any] = {
    "traits": [
        pw.ComputedTrait("ltv", pw.TraitType.NUMBER),
        pw.ComputedTrait("visits", pw.TraitType.INTEGER),
        pw.ComputedTrait("plan"),
        pw.ComputedTrait("is pro", pw.TraitType.BOOLEAN),
        pw.ComputedTrait("last_seen", pw.TraitType.TIMESTAMP),
        pw.ComputedTrait("profile", pw.TraitType.JSON),
    ],
    "audiences": [pw.Audience("vip"), pw.Audience("Churn Risk")],
}


@pytest.fixture
def conn(connection: Connection) -> Connection:
    """A connection to each engine in turn."""
    return connection


@pytest.fixture
def schema(conn: Connection) -> Iterator[str]:
    with temporary_schema(conn, "pw_sync") as name:
        yield name


def make_space(schema: str, **overrides: Any) -> pw.Space:
    return pw.Space(**{**SPACE_KW, "schema": schema, **overrides})


def clock_at(at: dt.datetime) -> Any:
    return lambda: at + dt.timedelta(seconds=5)


def assert_same_states(
    space: pw.Space, got: Mapping[str, pw.UserState], want: Mapping[str, pw.UserState]
) -> None:
    """Equal as the warehouse stores values (a NUMBER 1 is 1.0)."""
    assert sorted(got) == sorted(want)
    types = space.trait_types
    for user_id, state in want.items():
        other = got[user_id]
        for key in space.trait_keys:
            assert same_value(types[key], other.traits[key], state.traits[key]), (
                user_id,
                key,
                other.traits[key],
                state.traits[key],
            )
        assert dict(other.audiences) == dict(state.audiences), user_id


def rows(conn: Connection, schema: str, table: str, columns: str) -> list[tuple[Any, ...]]:
    q = conn.quote
    return conn.query(f"SELECT {columns} FROM {q(schema)}.{q(table)} ORDER BY 1")


# --- setup ----------------------------------------------------------------------------------


def test_setup_creates_tables_and_a_second_setup_changes_nothing(
    conn: Connection, schema: str
) -> None:
    wh = Warehouse(conn, make_space(schema))
    wh.setup()
    assert set(conn.tables(schema)) >= {"identifies", "users", "sync_runs"}
    users = conn.columns(schema, "users")
    assert list(users)[:3] == ["id", "ltv", "visits"]
    assert "is_pro" in users
    assert "churn_risk" in users
    before = {t: conn.columns(schema, t) for t in conn.tables(schema)}
    wh.setup()
    assert {t: conn.columns(schema, t) for t in conn.tables(schema)} == before
    # the lock row, where a transaction can hold it
    lock = [(LOCK_RUN_ID, "lock")] if conn.supports_transactions else []
    assert rows(conn, schema, "sync_runs", "run_id, status") == lock
    assert wh.history() == []
    assert wh.freshness() is None


def test_setup_adds_new_keys_and_keeps_columns_added_by_hand(conn: Connection, schema: str) -> None:
    Warehouse(conn, make_space(schema)).setup()
    q = conn.quote
    # a column added by hand for a key the space will get, and one the space never has
    boolean = capabilities(conn.kind).boolean_type
    conn.execute(f"ALTER TABLE {q(schema)}.{q('users')} ADD COLUMN {q('new_aud')} {boolean}")
    conn.execute(f"ALTER TABLE {q(schema)}.{q('users')} ADD COLUMN {q('notes')} {boolean}")
    bigger = make_space(schema, audiences=[*SPACE_KW["audiences"], pw.Audience("new_aud")])
    wh = Warehouse(conn, bigger)
    wh.setup()  # would fail if it re-added new_aud to users
    assert "new_aud" in conn.columns(schema, "identifies")
    assert list(conn.columns(schema, "users"))[-2:] == ["new_aud", "notes"]
    results = ComputedResults(audiences={"new_aud": {"u1"}})
    if capabilities(conn.kind).upsert in (Upsert.REBUILD, Upsert.REPLACING_MERGE_TREE):
        # users rows are written whole there: the sync refuses before writing anything
        with pytest.raises(WarehouseError, match=r"\['notes'\] the space does not sync"):
            wh.sync(results, at=T0)
        assert rows(conn, schema, "identifies", "id") == []
        return
    wh.sync(results, at=T0)
    assert rows(conn, schema, "users", "id, new_aud, notes") in (
        [("u1", True, None)],
        [("u1", 1, None)],
    )


def test_a_column_added_by_hand_keeps_its_values(conn: Connection, schema: str) -> None:
    """Where users rows are updated column by column, a sync leaves a column the space does
    not sync as it was; where they are written whole, the sync refuses (the test above)."""
    if capabilities(conn.kind).upsert in (Upsert.REBUILD, Upsert.REPLACING_MERGE_TREE):
        pytest.skip("users rows are written whole here: see the test above")
    wh = Warehouse(conn, make_space(schema))
    wh.setup()
    q = conn.quote
    wh.sync(ComputedResults(audiences={"vip": {"u1"}}), at=T0)
    conn.execute(f"ALTER TABLE {q(schema)}.{q('users')} ADD COLUMN {q('notes')} VARCHAR(100)")
    conn.execute(f"UPDATE {q(schema)}.{q('users')} SET {q('notes')} = 'kept'")
    wh.sync(ComputedResults(audiences={"vip": {"u1", "u2"}}), at=T0 + dt.timedelta(hours=1))
    assert sorted(rows(conn, schema, "users", "id, notes")) == [("u1", "kept"), ("u2", None)]


def test_sync_before_setup_says_to_call_setup(conn: Connection, schema: str) -> None:
    wh = Warehouse(conn, make_space(schema))
    with pytest.raises(WarehouseError, match=r"call Warehouse\.setup\(\)"):
        wh.sync(ComputedResults(), at=T0)


def test_a_connection_lost_before_the_sync_writes_is_a_warehouse_error(
    conn: Connection, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A driver error while checking the tables (e.g. the server restarted between two syncs)
    surfaces as a WarehouseError saying what to do, with the driver's error chained."""
    wh = Warehouse(conn, make_space(schema))
    wh.setup()
    lost = ConnectionError("server closed the connection unexpectedly")

    def columns(*_: object) -> dict[str, str]:
        raise lost

    monkeypatch.setattr(conn, "columns", columns)
    with pytest.raises(WarehouseError, match=r"before writing anything.*run the same sync") as info:
        wh.sync(ComputedResults(audiences={"vip": {"u1"}}), at=T0)
    assert info.value.__cause__ is lost


# --- syncing --------------------------------------------------------------------------------


def test_values_round_trip_and_a_second_sync_writes_nothing(conn: Connection, schema: str) -> None:
    space = make_space(schema)
    wh = Warehouse(conn, space)
    wh.setup()
    seen = dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    results = ComputedResults(
        traits={
            "u1": {
                "ltv": 120.5,
                "visits": 2**62,
                "plan": 'it\'s \\ "q"\n ünï ✓',
                "is pro": True,
                "last_seen": seen,
                "profile": {"a": [1, 1.0, True, None], "b": "x"},
            },
            "u2": {"ltv": 3, "profile": 1.0, "plan": ""},
            "u3": {"ltv": None},
        },
        audiences={"vip": {"u1", "u4"}, "Churn Risk": set()},
    )
    first = wh.sync(results, at=T0, clock=clock_at(T0))
    assert (first.events_written, first.users_written) == (3, 3)
    held = wh.users()
    assert held["u1"].traits == {
        "ltv": 120.5,
        "visits": 2**62,
        "plan": 'it\'s \\ "q"\n ünï ✓',
        "is pro": True,
        "last_seen": seen,
        "profile": {"a": [1, 1.0, True, None], "b": "x"},
    }
    assert held["u1"].audiences == {"vip": True, "Churn Risk": None}
    assert held["u2"].traits["profile"] == 1.0
    assert type(held["u2"].traits["profile"]) is float
    assert held["u2"].traits["plan"] == ""
    assert set(held) == {"u1", "u2", "u4"}
    again = wh.sync(results, at=T0 + HOUR, clock=clock_at(T0 + HOUR))
    assert again.rows_written == 0
    assert again.plan.is_empty
    assert len(rows(conn, schema, "identifies", "id")) == 3
    assert_same_states(space, wh.users(), dict(wh.load_log().snapshot(T0 + HOUR)))
    # the row's system columns
    (row,) = [r for r in rows(conn, schema, "users", "id, timestamp, received_at") if r[0] == "u1"]
    assert _instant(row[1]) == T0
    assert _instant(row[2]) == T0 + dt.timedelta(seconds=5)


def _instant(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def test_exits_and_clears_are_written_and_read_back(conn: Connection, schema: str) -> None:
    space = make_space(schema)
    wh = Warehouse(conn, space)
    wh.setup()
    wh.sync(
        ComputedResults(traits={"u1": {"plan": "gold", "ltv": 1.0}}, audiences={"vip": {"u1"}}),
        at=T0,
    )
    result = wh.sync(
        ComputedResults(traits={"u1": {"plan": None}}, audiences={"vip": set()}), at=T0 + HOUR
    )
    assert result.plan.counts["vip"] == KeyCounts(exited=1)
    assert result.plan.counts["plan"] == KeyCounts(changed=1)
    state = wh.users()["u1"]
    assert state.traits["plan"] is None
    assert state.traits["ltv"] == 1.0
    assert state.audiences["vip"] is False
    cleared = rows(conn, schema, "identifies", "cleared_keys, plan, vip")
    assert (",plan,", None, False) in [
        (c, p, None if v is None else bool(v)) for c, p, v in cleared
    ]
    log = wh.load_log()
    assert log.reconstruct_state("u1", T0).traits["plan"] == "gold"
    assert log.reconstruct_state("u1", T0 + HOUR).traits["plan"] is None
    assert [e.values for e in log.events("u1")][-1] == {"plan": None, "vip": False}


def test_history_and_freshness(conn: Connection, schema: str) -> None:
    wh = Warehouse(conn, make_space(schema))
    wh.setup()
    first = wh.sync(ComputedResults(audiences={"vip": {"a", "b"}}), at=T0, clock=clock_at(T0))
    wh.sync(ComputedResults(audiences={"vip": {"a"}}), at=T0 + HOUR, clock=clock_at(T0 + HOUR))
    with pytest.raises(InvalidEventError, match="unknown audience"):
        wh.sync(ComputedResults(audiences={"nope": {"a"}}), at=T0 + 2 * HOUR)
    history = wh.history()
    assert [(r.status, r.at, r.rows_written) for r in history] == [
        ("succeeded", T0, 4),
        ("succeeded", T0 + HOUR, 2),
        ("failed", T0 + 2 * HOUR, None),
    ]
    assert history[0].run_id == first.run.run_id
    assert history[0].counts["vip"] == KeyCounts(entered=2)
    assert history[1].counts["vip"] == KeyCounts(exited=1)
    assert history[1].started_at == T0 + HOUR + dt.timedelta(seconds=5)
    assert history[2].error is not None
    assert "unknown audience" in history[2].error
    fresh = wh.freshness()
    assert fresh is not None
    assert fresh.at == T0 + HOUR
    assert fresh.age(T0 + 3 * HOUR) == 2 * HOUR
    # the failed run wrote nothing
    assert len(rows(conn, schema, "identifies", "id")) == 3


def test_a_sync_behind_the_latest_is_refused_and_the_same_at_is_a_retry(
    conn: Connection, schema: str
) -> None:
    wh = Warehouse(conn, make_space(schema))
    wh.setup()
    results = ComputedResults(audiences={"vip": {"a"}})
    wh.sync(results, at=T0 + HOUR)
    with pytest.raises(WarehouseError, match="before the latest successful sync"):
        wh.sync(results, at=T0)
    assert wh.sync(results, at=T0 + HOUR).rows_written == 0


def test_progress_is_reported(conn: Connection, schema: str) -> None:
    wh = Warehouse(conn, make_space(schema), batch_rows=7)
    wh.setup()
    reports: list[SyncProgress] = []
    members = {f"u{i}" for i in range(20)}
    result = wh.sync(ComputedResults(audiences={"vip": members}), at=T0, progress=reports.append)
    stages = [r.stage for r in reports]
    assert stages[0] == "read"
    assert stages[-1] == "done"
    identifies = [(r.done, r.total) for r in reports if r.stage == "identifies"]
    assert identifies[0] == (0, 20)
    assert identifies[-1] == (20, 20)
    steps = [b[0] - a[0] for a, b in itertools.pairwise(identifies)]
    assert all(0 < step <= 7 for step in steps), identifies  # at most batch_rows at a time
    assert {r.run_id for r in reports} == {result.run.run_id}


def test_the_warehouse_rebuilds_any_moment_as_the_log_does(conn: Connection, schema: str) -> None:
    space = make_space(schema)
    wh = Warehouse(conn, space)
    wh.setup()
    steps = [
        ComputedResults(
            traits={"a": {"plan": "gold", "ltv": 1.0}, "b": {"visits": 3}},
            audiences={"vip": {"a", "b"}},
        ),
        ComputedResults(traits={"a": {"plan": None}}, audiences={"vip": {"b"}}),
        ComputedResults(traits={"b": {"profile": {"k": [1, True]}}}, audiences={"vip": set()}),
    ]
    for i, results in enumerate(steps):
        wh.sync(results, at=T0 + i * HOUR, clock=clock_at(T0 + i * HOUR))
    log = wh.load_log()
    for ts in [T0 - HOUR, T0, T0 + HOUR / 2, T0 + HOUR, T0 + 2 * HOUR, T0 + 5 * HOUR]:
        assert_same_states(space, wh.snapshot(ts), dict(log.snapshot(ts)))
        for user_id in ("a", "b", "nobody"):
            assert_same_states(
                space,
                {user_id: wh.reconstruct_state(user_id, ts)},
                {user_id: log.reconstruct_state(user_id, ts)},
            )
    # what the warehouse knew then: the second run was received at T0 + 1h + 5s
    known = wh.snapshot(T0 + 3 * HOUR, known_at=T0 + HOUR)
    assert known["a"].traits["plan"] == "gold"
    assert wh.snapshot(T0 + 3 * HOUR)["a"].traits["plan"] is None
    assert wh.reconstruct_state("a", T0 + HOUR).audiences["vip"] is False
    assert wh.reconstruct_state("nobody", T0 + HOUR) == pw.UserState.empty(space, "nobody")


# --- selective sync -------------------------------------------------------------------------


def test_excluded_keys_have_no_column_and_are_not_written(conn: Connection, schema: str) -> None:
    space = make_space(schema, excluded=["plan", "Churn Risk"])
    wh = Warehouse(conn, space)
    wh.setup()
    for table in ("users", "identifies"):
        assert "plan" not in conn.columns(schema, table)
        assert "churn_risk" not in conn.columns(schema, table)
    result = wh.sync(
        ComputedResults(
            traits={"u1": {"plan": "gold", "ltv": 1.0}}, audiences={"Churn Risk": {"u1"}}
        ),
        at=T0,
    )
    assert result.plan.skipped_keys == {"plan", "Churn Risk"}
    assert wh.users()["u1"].traits == {
        "ltv": 1.0,
        "visits": None,
        "is pro": None,
        "last_seen": None,
        "profile": None,
    }


def test_users_only(conn: Connection, schema: str) -> None:
    space = make_space(schema, sync_identifies=False)
    wh = Warehouse(conn, space)
    wh.setup()
    assert "identifies" not in conn.tables(schema)
    results = ComputedResults(traits={"u1": {"ltv": 2.0}}, audiences={"vip": {"u1"}})
    if capabilities(conn.kind).upsert not in (Upsert.ON_CONFLICT, Upsert.ON_DUPLICATE_KEY):
        # users is rebuilt from identifies there: a clear refusal, nothing written
        with pytest.raises(WarehouseError, match="sync identifies too"):
            wh.sync(results, at=T0)
        assert rows(conn, schema, "users", "id") == []
        return
    assert wh.sync(results, at=T0).rows_written == 1
    assert wh.sync(results, at=T0 + HOUR).rows_written == 0
    assert wh.users()["u1"].audiences["vip"] is True
    with pytest.raises(WarehouseError, match="sync_identifies=False"):
        wh.load_log()


def test_identifies_only_plans_from_the_log(conn: Connection, schema: str) -> None:
    space = make_space(schema, sync_users=False)
    wh = Warehouse(conn, space)
    wh.setup()
    assert "users" not in conn.tables(schema)
    results = ComputedResults(traits={"u1": {"ltv": 2.0}}, audiences={"vip": {"u1"}})
    assert wh.sync(results, at=T0).rows_written == 1
    assert wh.sync(results, at=T0 + HOUR).rows_written == 0
    exit_ = wh.sync(ComputedResults(audiences={"vip": set()}), at=T0 + 2 * HOUR)
    assert exit_.rows_written == 1
    state = wh.load_log().reconstruct_state("u1", T0 + 2 * HOUR)
    assert state.audiences["vip"] is False
    assert state.traits["ltv"] == 2.0
    with pytest.raises(WarehouseError, match="sync_users=False"):
        wh.users()


# --- the multi-run simulation ---------------------------------------------------------------


@pytest.mark.slow
def test_a_day_of_hourly_syncs(conn: Connection, schema: str) -> None:
    """1k users, 24 runs, 5% churn: after every run the users table equals the plan side's
    expectation and the log's snapshot, and re-running the run writes nothing."""
    space = simulation_space(8, 6, schema)
    wh = Warehouse(conn, space)
    wh.setup()
    users, runs = 1000, 24
    if capabilities(conn.kind).upsert not in (Upsert.ON_CONFLICT, Upsert.ON_DUPLICATE_KEY):
        # events are written as literal statements that refresh users in the warehouse
        # (~8 ms of tree building per event, and ~0.5 s per Spark statement): a smaller day
        users, runs = 150, 6
    simulation = Simulation(space, users, churn=0.05, seed=3)
    expected: dict[str, pw.UserState] = {}
    for run in range(runs):
        at = run_time(run)
        results = simulation.next()
        result = wh.sync(results, at=at, clock=lambda at=at: received(at))
        expected.update(result.plan.states)
        assert result.rows_written == len(result.plan.events) + len(result.plan.states)
        if run:
            assert 0 < result.plan.users_changed <= users // 20  # 5% churn (some cancel out)
        held = wh.users()
        assert_same_states(space, held, expected)
        assert_same_states(space, held, dict(wh.load_log().snapshot(at)))
        retry = wh.sync(results, at=at, clock=lambda at=at: received(at))
        assert retry.rows_written == 0
    history = wh.history()
    assert len([r for r in history if r.status == "succeeded"]) == 2 * runs
    assert len({r.at for r in history}) == runs
    ids = rows(conn, schema, "identifies", "id")
    assert len(ids) == len(set(ids))


# --- two syncs at once ----------------------------------------------------------------------


def test_the_same_connection_refuses_a_second_sync(conn: Connection, schema: str) -> None:
    wh = Warehouse(conn, make_space(schema))
    wh.setup()
    refused: list[SyncInProgressError] = []

    def second_sync(report: SyncProgress) -> None:
        if report.stage == "read":  # the first sync is running: start another on conn
            with pytest.raises(SyncInProgressError, match="already running") as info:
                Warehouse(conn, make_space(schema)).sync(ComputedResults(), at=T0)
            refused.append(info.value)

    wh.sync(ComputedResults(audiences={"vip": {"a"}}), at=T0, progress=second_sync)
    assert len(refused) == 1
    assert [r.status for r in wh.history()] == ["succeeded"]
    assert [u for u, s in wh.users().items() if s.audiences["vip"]] == ["a"]


def test_the_process_lock_goes_with_its_last_warehouse(conn: Connection, schema: str) -> None:
    """The per-connection sync lock is shared while Warehouses use it and freed after."""
    import gc

    from personas_warehouse.runner import warehouse as module

    key = (id(conn.raw), schema)
    first = Warehouse(conn, make_space(schema))
    second = Warehouse(conn, make_space(schema))
    assert module._local_locks[key] is first._lock is second._lock
    del first
    gc.collect()
    assert module._local_locks[key] is second._lock
    del second
    gc.collect()
    assert key not in module._local_locks


def _concurrent(
    make: Any, schema: str, results: ComputedResults
) -> tuple[list[Any], list[BaseException], list[float]]:
    """Two syncs of the same space on two connections; the first pauses holding the lock."""
    first_inside = threading.Event()
    outcomes: list[Any] = []
    errors: list[BaseException] = []
    finished: list[float] = []

    def pause(report: SyncProgress) -> None:
        if report.stage == "read":
            first_inside.set()
            time.sleep(1.0)

    def run(wh: Warehouse, progress: Any) -> None:
        try:
            outcomes.append(wh.sync(results, at=T0, progress=progress))
        except BaseException as err:
            errors.append(err)
        finished.append(time.monotonic())

    a, b = make()
    t1 = threading.Thread(target=run, args=(a, pause))
    t1.start()
    assert first_inside.wait(20)
    t2 = threading.Thread(target=run, args=(b, None))
    t2.start()
    t1.join()
    t2.join()
    return outcomes, errors, finished


def test_two_syncs_at_once_on_postgres_wait_for_each_other(tmp_path: Path) -> None:
    import os

    url = os.environ.get("PW_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set PW_TEST_POSTGRES_URL to run the PostgreSQL lock test")
    c1, c2 = connect_url(url), connect_url(url)
    with temporary_schema(c1, "pw_lock") as schema:
        space = make_space(schema)
        Warehouse(c1, space).setup()
        results = ComputedResults(audiences={"vip": {f"u{i}" for i in range(50)}})
        outcomes, errors, _ = _concurrent(
            lambda: (Warehouse(c1, space), Warehouse(c2, space)), schema, results
        )
        assert errors == []
        # the second waited for the first and then found nothing left to do
        assert sorted(o.rows_written for o in outcomes) == [0, 100]
        ids = rows(c1, schema, "identifies", "id")
        assert len(ids) == 50
        statuses = [r.status for r in Warehouse(c1, space).history()]
        assert statuses == ["succeeded", "succeeded"]
    c1.close()
    c2.close()


def test_two_syncs_at_once_on_duckdb_one_fails_clearly(tmp_path: Path) -> None:
    pytest.importorskip("duckdb")
    import duckdb

    path = tmp_path / "lock.duckdb"
    raw = duckdb.connect(str(path))
    space = make_space("pw_lock")
    Warehouse(raw, space).setup()
    results = ComputedResults(audiences={"vip": {f"u{i}" for i in range(50)}})
    outcomes, errors, _ = _concurrent(
        lambda: (Warehouse(raw.cursor(), space), Warehouse(raw.cursor(), space)),
        "pw_lock",
        results,
    )
    assert [type(e) for e in errors] == [SyncInProgressError]
    assert "holds the sync lock" in str(errors[0])
    assert [o.rows_written for o in outcomes] == [100]
    wh = Warehouse(raw.cursor(), space)
    assert wh.sync(results, at=T0).rows_written == 0  # run again: nothing was lost
    count = raw.execute('SELECT count(*), count(DISTINCT id) FROM "pw_lock"."identifies"')
    assert count.fetchall() == [(50, 50)]
    raw.close()


def test_two_syncs_at_once_on_sqlite_one_fails_clearly(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "main.sqlite"
    space = make_space("pw_lock")

    def connect() -> Any:
        raw = sqlite3.connect(str(path), timeout=0.3, check_same_thread=False)
        raw.execute(f"ATTACH DATABASE '{tmp_path / 'pw_lock.sqlite'}' AS pw_lock")
        return raw

    Warehouse(connect(), space).setup()
    results = ComputedResults(audiences={"vip": {f"u{i}" for i in range(50)}})
    outcomes, errors, _ = _concurrent(
        lambda: (Warehouse(connect(), space), Warehouse(connect(), space)), "pw_lock", results
    )
    assert [type(e) for e in errors] == [SyncInProgressError]
    assert [o.rows_written for o in outcomes] == [100]
    assert Warehouse(connect(), space).sync(results, at=T0).rows_written == 0
    check = sqlite3.connect(str(tmp_path / "pw_lock.sqlite"))
    assert check.execute("SELECT count(*), count(DISTINCT id) FROM identifies").fetchall() == [
        (50, 50)
    ]


# --- the fast parameter conversion ----------------------------------------------------------


@pytest.mark.parametrize(
    "dialect", ["sqlite", "duckdb", "postgres", "mysql", "clickhouse", "spark"]
)
def test_parameter_converters_equal_parameter_value(dialect: str) -> None:
    from personas_warehouse.runner.warehouse import parameter_converter
    from personas_warehouse.sql.values import parameter_value

    caps = capabilities(dialect)
    plus2 = dt.timezone(dt.timedelta(hours=2))
    samples: dict[pw.TraitType | None, list[Any]] = {
        None: [
            T0,
            T0.astimezone(plus2),
            dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        ],
        pw.TraitType.TIMESTAMP: [T0.astimezone(plus2)],
        pw.TraitType.BOOLEAN: [True, False],
        pw.TraitType.INTEGER: [0, -(2**63), 2**63 - 1],
        pw.TraitType.NUMBER: [1, 2.5, -0.0],
        pw.TraitType.STRING: ["", "it's \\ ✓"],
        pw.TraitType.JSON: [{"a": [1, 1.0, True, None]}, "x", 1.0],
    }
    for trait_type, values in samples.items():
        convert = parameter_converter(caps, trait_type)
        assert convert(None) is None
        for value in values:
            want = parameter_value(caps, trait_type, value)
            got = convert(value)
            assert got == want, (trait_type, value)
            assert type(got) is type(want), (trait_type, value)
            if isinstance(want, dt.datetime):
                assert got.utcoffset() == want.utcoffset()
