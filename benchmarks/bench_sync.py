"""The hourly sync at scale: 100k users, 50 keys (25 traits, 25 audiences), 24 runs, 5% churn.

Syncs a deterministic simulation (tests/sync_worker.py) into DuckDB (in memory or a file) and
PostgreSQL (``PW_TEST_POSTGRES_URL``), and prints per run the time of the whole sync and of its
parts (read the users table, plan, write), the rows written, and a check that re-running the
run writes nothing. With ``--check``, the last run's users table is compared with the log
rebuilt from ``identifies`` (``load_log().snapshot``) and with the plan side's expectation.

    python benchmarks/bench_sync.py                      # the full figure (several minutes)
    python benchmarks/bench_sync.py --users 10000 --runs 6 --engines duckdb
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from sync_worker import Simulation, received, run_time, simulation_space  # noqa: E402

from personas_warehouse.runner.connections import connect_url  # noqa: E402
from personas_warehouse.runner.warehouse import SyncProgress, Warehouse  # noqa: E402
from personas_warehouse.sync import same_value  # noqa: E402


def bench(url: str, name: str, args: argparse.Namespace) -> dict[str, Any]:
    conn = connect_url(url)
    schema = f"pw_bench_{os.getpid()}"
    conn.drop_schema(schema)
    space = simulation_space(args.traits, args.audiences, schema)
    warehouse = Warehouse(conn, space)
    warehouse.setup()
    simulation = Simulation(space, args.users, churn=args.churn, seed=11)
    expected: dict[str, Any] = {}
    hourly: list[float] = []
    print(f"\n{name}: {args.users} users, {len(space.keys)} keys, {args.runs} runs")
    print("run  total_s  read_s  plan_s  write_s  events  users  rerun_rows")
    try:
        for run in range(args.runs):
            results = simulation.next()
            at = run_time(run)
            marks: dict[str, float] = {}

            def progress(report: SyncProgress, marks: dict[str, float] = marks) -> None:
                marks.setdefault(report.stage, time.perf_counter())

            began = time.perf_counter()
            result = warehouse.sync(
                results, at=at, clock=lambda at=at: received(at), progress=progress
            )
            total = time.perf_counter() - began
            written = marks.get("identifies", marks.get("users", began + total))
            read = marks.get("plan", written) - marks.get("read", began)
            planned = written - marks.get("plan", written)
            expected.update(result.plan.states)
            rerun = warehouse.sync(results, at=at, clock=lambda at=at: received(at))
            if run:
                hourly.append(total)
            print(
                f"{run:3d}  {total:7.2f}  {read:6.2f}  {planned:6.2f}  "
                f"{began + total - written:7.2f}  "
                f"{result.events_written:6d}  {result.users_written:5d}  {rerun.rows_written:10d}",
                flush=True,
            )
            assert rerun.rows_written == 0
        history = warehouse.history()
        assert len({r.at for r in history if r.status == "succeeded"}) == args.runs
        if args.check:
            began = time.perf_counter()
            held = warehouse.users()
            snapshot = warehouse.load_log().snapshot(run_time(args.runs - 1))
            types = space.trait_types
            for states in (snapshot, expected):
                assert sorted(states) == sorted(held)
                for user_id, state in held.items():
                    other = states[user_id]
                    assert dict(other.audiences) == dict(state.audiences)
                    for key in space.trait_keys:
                        assert same_value(types[key], other.traits[key], state.traits[key])
            took = time.perf_counter() - began
            print(f"check: users == load_log().snapshot == plan states ({took:.1f}s)")
    finally:
        if not args.keep:
            conn.drop_schema(schema)
        conn.close()
    median = statistics.median(hourly) if hourly else float("nan")
    print(
        f"{name}: one hourly sync of {args.users} users with {args.churn:.0%} churn: "
        f"median {median:.2f}s, min {min(hourly, default=float('nan')):.2f}s, "
        f"max {max(hourly, default=float('nan')):.2f}s"
    )
    return {"engine": name, "median": median}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=24)
    parser.add_argument("--traits", type=int, default=25)
    parser.add_argument("--audiences", type=int, default=25)
    parser.add_argument("--churn", type=float, default=0.05)
    parser.add_argument("--engines", default="duckdb,postgres")
    parser.add_argument("--duckdb-file", default="", help="a DuckDB file (default: in memory)")
    parser.add_argument(
        "--check", action="store_true", help="compare users with the log at the end"
    )
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    args = parser.parse_args()
    started = dt.datetime.now(dt.UTC)
    figures = []
    for engine in args.engines.split(","):
        if engine == "duckdb":
            url = f"duckdb:///{args.duckdb_file}" if args.duckdb_file else "duckdb://"
        elif engine == "postgres":
            url = os.environ.get("PW_TEST_POSTGRES_URL", "")
            if not url:
                print("postgres: set PW_TEST_POSTGRES_URL to run it")
                continue
        elif engine == "sqlite":
            url = "sqlite://"
        elif engine == "mysql":
            url = os.environ.get("PW_TEST_MYSQL_URL", "")
            if not url:
                print("mysql: set PW_TEST_MYSQL_URL to run it")
                continue
        else:
            raise SystemExit(f"unknown engine {engine!r}: use duckdb, postgres, sqlite, mysql")
        figures.append(bench(url, engine, args))
    print(f"\nstarted {started.isoformat()}; summary:")
    for figure in figures:
        print(f"  {figure['engine']}: hourly sync median {figure['median']:.2f}s")


if __name__ == "__main__":
    main()
