"""Faults of the server and the disk, on real engines: a PostgreSQL server restarted in the
middle of a sync, and a DuckDB file whose disk fills up.

Both run the worker of tests/sync_worker.py in a child process (as the SIGKILL tests of
tests/test_sync_faults.py do) and compare what it leaves, row for row (all columns but the load
time ``uuid_ts``), with a worker that was never interrupted:

* PostgreSQL: a private cluster (tests/pg_cluster.py: Debian's PostgreSQL 15 binaries, run as
  ``postgres``, a temporary data directory, a free port; the shared server on 5432 is never
  touched) is restarted (``pg_ctl restart -m fast`` and ``-m immediate``) while the worker is
  writing. The worker must fail with a clear error (``WarehouseError`` with the engine's error
  chained), nothing half-written may be left (``users`` == ``load_log().snapshot`` of the last
  committed run, no duplicate message id), and running it again must finish the job.
* Disk full: a DuckDB file on a small tmpfs, filled up by a ballast file after two committed
  runs. The next sync must fail with ``WarehouseError`` naming "No space left on device" and
  leave the database exactly as the two runs left it (readable in place); once the ballast is
  deleted, running the worker again must finish the job.

Both need root (runuser, mount); they are skipped with the reason elsewhere, and fail instead
when ``CI=true`` (CI has root and Debian's postgresql-15).
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from pg_cluster import PrivateCluster, unavailable
from sync_worker import run_time, simulation_space
from test_sync_faults import tables

from personas_warehouse.runner.connections import connect_url
from personas_warehouse.runner.warehouse import Warehouse
from personas_warehouse.sync import same_value

WORKER = Path(__file__).with_name("sync_worker.py")
EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(Error|Exception|Shutdown)\b(: |$)")
IN_CI = os.environ.get("CI", "").lower() == "true"
RESTARTS = ["fast", "immediate"] * 3
# Inside a sync's transaction the failure is a WarehouseError (rolled back, engine error
# chained); a restart between two syncs is met by the next sync's checks before its
# transaction, which wrap the driver's connection error in a WarehouseError too.
CLEAR_ERRORS = ("personas_warehouse.errors.WarehouseError",)


def skip_or_fail(reason: str) -> None:
    """Skip with the reason; in CI (``CI=true``) fail instead: CI must run these tests."""
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def worker(url: str, schema: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), "--url", url, "--schema", schema, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(url: str, schema: str, *args: str) -> str:
    """Run the worker to the end; return its output."""
    out, err = worker(url, schema, *args).communicate(timeout=600)
    assert "committed" in out, f"worker did nothing:\n{out}\n{err}"
    return out


def last_error(stderr: str) -> str:
    """The exception the worker died of: the last ``module.Name: message`` line of its output
    (a message may span lines; its continuation lines are indented or plain text)."""
    lines = [line for line in stderr.splitlines() if EXCEPTION_LINE.match(line)]
    return lines[-1] if lines else ""


def assert_consistent(url: str, schema: str) -> tuple[int, dt.datetime | None]:
    """``users`` equals the log rebuilt from ``identifies`` as of the last successful run, the
    syncs' state nothing half-written can fake; return the number of users and that run's
    ``at``."""
    conn = connect_url(url)
    try:
        conn.create_schema(schema)
        space = simulation_space(6, 4, schema)
        warehouse = Warehouse(conn, space)
        fresh = warehouse.freshness()
        held = warehouse.users()
        if fresh is None:
            assert held == {}, "users rows without a successful run"
            ((events,),) = conn.query(
                f"SELECT count(*) FROM {conn.quote(schema)}.{conn.quote('identifies')}"
            )
            assert events == 0, "identifies rows without a successful run"
            return 0, None
        snapshot = warehouse.load_log().snapshot(fresh.at)
        assert sorted(held) == sorted(snapshot)
        for user_id, state in held.items():
            other = snapshot[user_id]
            assert dict(other.audiences) == dict(state.audiences), user_id
            for key, kind in space.trait_types.items():
                assert same_value(kind, other.traits[key], state.traits[key]), (user_id, key)
        return len(held), fresh.at
    finally:
        conn.close()


# ------------------------------------------------------------------ PostgreSQL restarted

PG_ARGS = ["--users", "300", "--runs", "8", "--batch-rows", "15", "--pause", "0.02"]


@pytest.mark.slow
def test_postgres_restarted_in_the_middle_of_syncs() -> None:
    reason = unavailable()
    if reason:
        skip_or_fail(f"no private PostgreSQL cluster: {reason}")
    pytest.importorskip("psycopg")
    schema = "pw_restart"
    rng = random.Random(15)
    with PrivateCluster.started() as cluster:
        url = cluster.url
        finish(url, schema, *PG_ARGS)
        reference = tables(url, schema)
        assert len(reference["runs"]) == 8
        conn = connect_url(url)
        conn.drop_schema(schema)  # the victim uses the same schema, hence the same ids
        conn.close()

        points: list[dict[str, Any]] = []
        for number, mode in enumerate(RESTARTS):
            proc = worker(url, schema, *PG_ARGS)
            assert proc.stdout is not None
            # ~45 progress lines in run 0, ~6 in each later one: every other restart lets a
            # run commit first and lands in the next run
            wanted = rng.randrange(3, 40) if number % 2 == 0 else rng.randrange(1, 7)
            after_commit = number % 2 == 1
            lines: list[str] = []
            for line in proc.stdout:
                lines.append(line.strip())
                if after_commit and "committed" not in line:
                    continue
                after_commit = False
                wanted -= 1
                if wanted <= 0:
                    break
            cluster.restart(mode)
            _, err = proc.communicate(timeout=120)
            point = {
                "mode": mode,
                "last progress": lines[-1] if lines else "",
                "exit": proc.returncode,
                "error": last_error(err),
            }
            points.append(point)
            if proc.returncode != 0:
                assert point["error"].startswith(CLEAR_ERRORS), f"unclear failure:\n{err}"
            _, fresh_at = assert_consistent(url, schema)
            # exactly the events of the committed runs (timestamp = the run's at); no dupes
            held = tables(url, schema)["identifies"]
            assert held == [r for r in reference["identifies"] if fresh_at and r[2] <= fresh_at]
        during = [p for p in points if p["exit"] != 0]
        print(f"\nPostgreSQL restarts tried: {len(points)}, {len(during)} while a worker ran")
        for p in points:
            print(
                f"  -m {p['mode']} after {p['last progress']!r}: exit {p['exit']}, "
                f"{p['error'][:150]}"
            )
        mid_write = [
            p
            for p in points
            if p["exit"] != 0 and p["last progress"].split()[2:3] in (["identifies"], ["users"])
        ]
        assert mid_write, f"no restart landed while a sync was writing: {points}"
        # the failure is the one Warehouse.sync raises: rolled back, engine error chained
        assert any(p["error"].startswith(CLEAR_ERRORS[0]) for p in mid_write), points

        finish(url, schema, *PG_ARGS)
        assert_consistent(url, schema)
        got = tables(url, schema)
        for name in ("identifies", "users", "runs"):
            assert got[name] == reference[name], name
        conn = connect_url(url)
        history = Warehouse(conn, simulation_space(6, 4, schema)).history()
        conn.close()
        assert [r.at for r in history if r.status == "succeeded"][-1] == run_time(7)


# ------------------------------------------------------------------ disk full

DISK_ARGS = ["--users", "2000", "--batch-rows", "200"]
TMPFS_SIZE = "8m"


def fill(directory: Path) -> Path:
    """Write a ballast file until the file system is full; return it."""
    ballast = directory / "ballast"
    chunk = b"\xff" * 4096
    with ballast.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
    return ballast


@pytest.mark.slow
def test_duckdb_disk_full_in_the_middle_of_a_sync(tmp_path: Path) -> None:
    pytest.importorskip("duckdb")
    if os.geteuid() != 0:
        skip_or_fail("mounting a tmpfs needs root")
    disk = Path(tempfile.mkdtemp(prefix="pw_full_"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        disk.rmdir()
        skip_or_fail(f"mount -t tmpfs is not permitted here: {mounted.stderr.strip()}")
    schema = "pw_full"
    try:
        reference_url = f"duckdb:///{tmp_path / 'reference.duckdb'}"
        finish(reference_url, schema, *DISK_ARGS, "--runs", "5")
        reference = tables(reference_url, schema)
        two_runs_url = f"duckdb:///{tmp_path / 'two.duckdb'}"
        finish(two_runs_url, schema, *DISK_ARGS, "--runs", "2")
        two_runs = tables(two_runs_url, schema)

        url = f"duckdb:///{disk / 'victim.duckdb'}"
        finish(url, schema, *DISK_ARGS, "--runs", "2")
        assert tables(url, schema) == two_runs
        ballast = fill(disk)

        failures = []
        for _ in range(2):  # the sync, and a retry while the disk is still full
            out, err = worker(url, schema, *DISK_ARGS, "--runs", "5").communicate(timeout=600)
            error = last_error(err)
            failures.append(error)
            assert error.startswith("personas_warehouse.errors.WarehouseError"), err
            assert "No space left on device" in error
            assert "run the same sync again" in error
            assert "run 2 committed" not in out
            # as the two committed runs left it, readable in place
            assert tables(url, schema) == two_runs
            assert assert_consistent(url, schema) == (2000, run_time(1))
        print(f"\ndisk-full points tried: {len(failures)}")
        for error in failures:
            print(f"  ...{error[error.find('failed and was rolled back') :][:230]}")
        conn = connect_url(url)
        statuses = [r.status for r in Warehouse(conn, simulation_space(6, 4, schema)).history()]
        conn.close()
        print(f"  history after the failures: {statuses}")

        ballast.unlink()
        time.sleep(0.1)
        finish(url, schema, *DISK_ARGS, "--runs", "5")
        assert_consistent(url, schema)
        got = tables(url, schema)
        for name in ("identifies", "users", "runs"):
            assert got[name] == reference[name], name
    finally:
        subprocess.run(["umount", str(disk)], check=False)
        disk.rmdir()
