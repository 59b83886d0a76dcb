"""Crash safety: SIGKILL a process in the middle of its syncs, run it again, compare row for row.

A worker (tests/sync_worker.py) syncs a few hourly runs of a simulation into a DuckDB file, a
SQLite file or a PostgreSQL schema, slowly (small statements, a pause per progress report), so
kills land in the middle of a transaction as often as between them. The victim is killed
several times at random moments, then run to the end; its tables must equal those of a worker
that was never interrupted: every ``identifies`` and ``users`` row (all columns but ``uuid_ts``,
the load time), the same successful runs with the same counts, no duplicate message id.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sync_worker import simulation_space

from personas_warehouse.runner.connections import Connection, connect_url
from personas_warehouse.runner.warehouse import Warehouse
from personas_warehouse.sync import KeyCounts

WORKER = Path(__file__).with_name("sync_worker.py")
ARGS = ["--users", "300", "--runs", "5", "--batch-rows", "15", "--pause", "0.01"]
KILLS = 3


def start(url: str, schema: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), "--url", url, "--schema", schema, *ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(url: str, schema: str) -> None:
    """Run the worker to the end."""
    proc = start(url, schema)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"worker failed:\n{out}\n{err}"


def kill_at_random(url: str, schema: str, rng: random.Random) -> list[str]:
    """Start the worker and SIGKILL it after a random number of its progress lines (each is
    printed before a pause, inside the sync); return the lines it printed."""
    proc = start(url, schema)
    assert proc.stdout is not None
    lines: list[str] = []
    wanted = rng.randrange(1, 60)
    for line in proc.stdout:
        lines.append(line.strip())
        if len(lines) >= wanted:
            time.sleep(rng.uniform(0, 0.01))
            break
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return lines


def table_rows(conn: Connection, schema: str, table: str) -> list[tuple[Any, ...]]:
    columns = [c for c in conn.columns(schema, table) if c != "uuid_ts"]
    q = conn.quote
    listed = ", ".join(q(c) for c in columns)
    return conn.query(f"SELECT {listed} FROM {q(schema)}.{q(table)} ORDER BY {q(columns[0])}")


def tables(url: str, schema: str) -> dict[str, Any]:
    """What a worker left: identifies and users rows, and per run time the rows written and
    counts added up over its successful runs (a worker started again re-runs the last
    committed run, which writes nothing)."""
    conn = connect_url(url)
    conn.create_schema(schema)  # exists already; on SQLite this attaches its database
    try:
        got: dict[str, Any] = {t: table_rows(conn, schema, t) for t in ("identifies", "users")}
        q = conn.quote
        ((total, distinct),) = conn.query(
            f"SELECT count(*), count(DISTINCT {q('id')}) FROM {q(schema)}.{q('identifies')}"
        )
        assert total == distinct, "duplicate message ids"
        totals: dict[Any, tuple[int, dict[str, KeyCounts]]] = {}
        for run in Warehouse(conn, simulation_space(6, 4, schema)).history():
            if run.status != "succeeded":
                continue
            rows, counts = totals.get(run.at, (0, {}))
            merged = {k: counts.get(k, KeyCounts()) + c for k, c in run.counts.items()}
            totals[run.at] = (rows + (run.rows_written or 0), merged)
        got["runs"] = totals
        return got
    finally:
        conn.close()


def crash_and_compare(url_a: str, url_b: str, schema: str, seed: int) -> None:
    """An uninterrupted worker into ``url_a``, a killed-and-restarted one into ``url_b``
    (the same URL is fine: the reference's schema is dropped before the victim starts, so both
    use the same schema name and hence the same message ids)."""
    rng = random.Random(seed)
    finish(url_a, schema)
    reference = tables(url_a, schema)
    assert len(reference["runs"]) == 5
    assert reference["identifies"]
    if url_a == url_b:
        conn = connect_url(url_a)
        conn.drop_schema(schema)
        conn.close()
    last_words = [kill_at_random(url_b, schema, rng)[-1:] for _ in range(KILLS)]
    # the kills landed in the middle of a sync (while writing: inside its transaction)
    writing = [w for w in last_words if w and w[0].split()[2] in ("identifies", "users")]
    assert writing, f"no kill landed while writing: {last_words}"
    finish(url_b, schema)
    got = tables(url_b, schema)
    for name in ("identifies", "users", "runs"):
        assert got[name] == reference[name], name


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_during_syncs_into_a_duckdb_file(tmp_path: Path, seed: int) -> None:
    pytest.importorskip("duckdb")
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    crash_and_compare(f"duckdb:///{a}", f"duckdb:///{b}", "pw_fault", seed)


@pytest.mark.slow
def test_sigkill_during_syncs_into_a_sqlite_file(tmp_path: Path) -> None:
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    crash_and_compare(f"sqlite:///{a}", f"sqlite:///{b}", "pw_fault", 3)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [4, 5])
def test_sigkill_during_syncs_into_postgres(seed: int) -> None:
    url = os.environ.get("PW_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set PW_TEST_POSTGRES_URL to run the PostgreSQL crash test")
    schema = f"pw_fault_{os.getpid()}_{seed}_{random.randrange(10**6)}"
    try:
        crash_and_compare(url, url, schema, seed)
    finally:
        conn = connect_url(url)
        conn.drop_schema(schema)
        conn.close()


def test_a_failed_write_leaves_nothing_half_written(tmp_path: Path) -> None:
    """An engine error in the middle of the writes: rolled back, recorded, and the re-run
    completes (the in-process twin of a server going away mid-sync)."""
    import sqlite3

    from sync_worker import Simulation, run_time

    path = tmp_path / "main.sqlite"
    raw = sqlite3.connect(str(path), isolation_level=None)
    space = simulation_space(6, 4, "pw_fault")
    wh = Warehouse(raw, space, batch_rows=10)
    wh.setup()
    simulation = Simulation(space, 100, seed=9)
    results = simulation.next()
    calls = 0

    def break_after_some_batches(report: Any) -> None:
        nonlocal calls
        if report.stage == "users":
            calls += 1
            if calls == 3:  # users half written: make the engine fail the next statement
                raw.execute("DROP TABLE pw_fault.users")

    with pytest.raises(Exception, match="failed and was rolled back") as info:
        wh.sync(results, at=run_time(0), progress=break_after_some_batches)
    assert "users" in str(info.value)
    assert raw.execute("SELECT count(*) FROM pw_fault.identifies").fetchone() == (0,)
    assert raw.execute("SELECT count(*) FROM pw_fault.users").fetchone() == (0,)
    (failed,) = wh.history()
    assert failed.status == "failed"
    result = wh.sync(results, at=run_time(0))
    assert result.events_written == len(result.plan.events) > 0
    assert raw.execute("SELECT count(*) FROM pw_fault.users").fetchone() == (
        len(result.plan.states),
    )
