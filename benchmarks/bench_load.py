"""Load: ~1M change events for 100k users and 200 keys synced into DuckDB and PostgreSQL, and a
10M-event ``IdentifiesLog``; wall time, peak memory, rows, and counts that reconcile exactly.

The sync part runs the deterministic simulation of tests/sync_worker.py with 100% churn after
the first run: every run, every user changes 3 traits and enters or leaves 2 audiences, so every
run sends exactly one identify event per user, and ``--events / --users`` hourly runs add up to
``--events`` change events. After the last run it checks, reading back from the engine:

- events in (the sum of ``SyncResult.events_written``, and the plans' event counts) = rows in
  ``identifies`` = distinct message ids in ``identifies`` = ``len(load_log())``;
- users in the simulation = distinct ``user_id`` in ``identifies`` = rows in ``users``;
- the ``users`` table == ``load_log().snapshot(latest run)``, every user, every key, value for
  value (type-aware, ``same_value``).

The log part builds an ``IdentifiesLog`` of ``--log-events`` events (``--users`` users, the same
200-key space, 1 to 3 keys per event, added in chunks of 200k from a generator so the event
objects never all exist at once) and checks ``len(log)`` = events in = distinct message ids,
``len(log.users())`` = users, and that ``snapshot(latest)`` has every user.

Each part runs in its own child process, so peak memory is that process's
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the resident set's high-water mark, the
interpreter and the driver included), not tracemalloc (which would slow the run several-fold).

    python benchmarks/bench_load.py                   # the full figure: 1M / 100k / 200, 10M
    python benchmarks/bench_load.py --users 2000 --events 10000 --keys 20 --log-events 50000
    python benchmarks/bench_load.py --parts duckdb    # one part (duckdb, postgres, log)

PostgreSQL is ``PW_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
DuckDB is in memory unless ``--duckdb-file`` is given. Exits non-zero when a count does not
reconcile.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from sync_worker import Simulation, received, run_time, simulation_space  # noqa: E402

import personas_warehouse as pw  # noqa: E402
from personas_warehouse.log import IdentifiesLog  # noqa: E402
from personas_warehouse.runner.connections import connect_url  # noqa: E402
from personas_warehouse.runner.warehouse import Warehouse  # noqa: E402
from personas_warehouse.sync import same_value  # noqa: E402

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
LOG_CHUNK = 200_000


def peak_rss_mb() -> float:
    """This process's peak resident set (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def split_keys(keys: int) -> tuple[int, int]:
    """``keys`` keys as (traits, audiences): half and half."""
    return keys - keys // 2, keys // 2


def compare_states(space: pw.Space, held: dict[str, Any], other: dict[str, Any]) -> int:
    """Assert two ``user_id -> UserState`` maps are equal, type-aware; return the values
    compared."""
    if sorted(held) != sorted(other):
        missing, extra = set(held) - set(other), set(other) - set(held)
        raise AssertionError(f"users differ: {len(missing)} missing, {len(extra)} extra")
    types = space.trait_types
    compared = 0
    for user_id, state in held.items():
        mine = other[user_id]
        if dict(mine.audiences) != dict(state.audiences):
            raise AssertionError(f"{user_id}: audiences differ")
        for key in space.trait_keys:
            if not same_value(types[key], mine.traits[key], state.traits[key]):
                raise AssertionError(f"{user_id}.{key}: {mine.traits[key]!r} != users row")
            compared += 1
        compared += len(state.audiences)
    return compared


def sync_load(url: str, args: argparse.Namespace, schema: str) -> dict[str, Any]:
    """Sync ``events / users`` runs into ``url``; reconcile; return the figures."""
    traits, audiences = split_keys(args.keys)
    space = simulation_space(traits, audiences, schema)
    runs = max(1, -(-args.events // args.users))
    conn = connect_url(url)
    conn.drop_schema(schema)
    began = time.perf_counter()
    try:
        warehouse = Warehouse(conn, space)
        warehouse.setup()
        simulation = Simulation(space, args.users, churn=1.0, seed=args.seed)
        events_in = rows_written = 0
        per_run: list[float] = []
        for run in range(runs):
            results = simulation.next()
            at = run_time(run)
            started = time.perf_counter()
            result = warehouse.sync(results, at=at, clock=lambda at=at: received(at))
            per_run.append(time.perf_counter() - started)
            if result.events_written != len(result.plan.events):
                raise AssertionError(
                    f"run {run}: wrote {result.events_written} events of "
                    f"{len(result.plan.events)} planned"
                )
            events_in += result.events_written
            rows_written += result.rows_written
            print(
                f"  run {run}: {result.events_written} events, {result.users_written} users "
                f"rows, {per_run[-1]:.1f}s",
                file=sys.stderr,
                flush=True,
            )
        sync_s = time.perf_counter() - began
        q = conn.quote
        identifies = f"{q(schema)}.{q('identifies')}"
        ((rows, ids, users_in_log),) = conn.query(
            f"SELECT count(*), count(DISTINCT {q('id')}), count(DISTINCT {q('user_id')}) "
            f"FROM {identifies}"
        )
        ((user_rows,),) = conn.query(f"SELECT count(*) FROM {q(schema)}.{q('users')}")
        checked = time.perf_counter()
        held = warehouse.users()
        log = warehouse.load_log()
        snapshot = log.snapshot(run_time(runs - 1))
        values = compare_states(space, held, snapshot)
        check_s = time.perf_counter() - checked
        reconciled = {
            "events in == rows in identifies": events_in == rows,
            "rows in identifies == distinct message ids": rows == ids,
            "distinct message ids == len(load_log())": ids == len(log),
            "users == distinct users in identifies": args.users == users_in_log,
            "users == rows in users": args.users == user_rows,
            "users table == load_log().snapshot(latest)": True,  # compare_states raised if not
            "every run sent one event per user": events_in == runs * args.users,
        }
        return {
            "runs": runs,
            "keys": len(space.keys),
            "users": args.users,
            "events_in": events_in,
            "rows_written": rows_written,
            "identifies_rows": rows,
            "distinct_ids": ids,
            "log_events": len(log),
            "distinct_users": users_in_log,
            "users_rows": user_rows,
            "values_compared": values,
            "sync_s": round(sync_s, 1),
            "first_run_s": round(per_run[0], 1),
            "later_runs_s": [round(s, 1) for s in per_run[1:]],
            "check_s": round(check_s, 1),
            "reconciled": reconciled,
        }
    finally:
        if not args.keep:
            conn.drop_schema(schema)
        conn.close()


def log_events(space: pw.Space, count: int, users: int, seed: int) -> Iterator[pw.IdentifyEvent]:
    """``count`` deterministic events over ``users`` users, one a minute-ish, 1-3 keys each:
    traits get an integer, a number, a string or a boolean by type (a clear now and then),
    audiences a membership flip."""
    import random

    rng = random.Random(seed)
    types = space.trait_types
    trait_keys = list(space.trait_keys)
    audience_keys = list(space.audience_keys)
    start = run_time(0)
    for n in range(count):
        values: dict[str, Any] = {}
        for _ in range(rng.randint(1, 3)):
            if audience_keys and rng.random() < 0.4:
                values[rng.choice(audience_keys)] = rng.random() < 0.5
                continue
            key = rng.choice(trait_keys)
            kind = types[key]
            if rng.random() < 0.05:
                values[key] = None
            elif kind is pw.TraitType.INTEGER:
                values[key] = rng.randrange(10**6)
            elif kind is pw.TraitType.NUMBER:
                values[key] = rng.randrange(10**6) / 100
            elif kind is pw.TraitType.BOOLEAN:
                values[key] = rng.random() < 0.5
            elif kind is pw.TraitType.STRING:
                values[key] = rng.choice(["gold", "silver", "o'brien", ""])
            else:  # TIMESTAMP, JSON: keep the generator cheap, use a clear
                values[key] = None
        at = start + dt.timedelta(seconds=n)
        # users 0 .. users-1 first, so every user has an event; then at random
        user = n if n < users else rng.randrange(users)
        yield pw.IdentifyEvent(f"m{n:010d}", f"user_{user:07d}", at, values)


def log_load(args: argparse.Namespace) -> dict[str, Any]:
    """Build an ``IdentifiesLog`` of ``--log-events`` events; reconcile; return the figures."""
    traits, audiences = split_keys(args.keys)
    space = simulation_space(traits, audiences)
    log = IdentifiesLog(space)
    stream = log_events(space, args.log_events, args.users, args.seed)
    began = time.perf_counter()
    generate_s = 0.0
    while True:
        generated = time.perf_counter()
        batch = list(itertools.islice(stream, LOG_CHUNK))
        generate_s += time.perf_counter() - generated
        if not batch:
            break
        log.extend(batch)
        del batch
    size = len(log)  # folds the pending chunks in: the index is built here
    build_s = time.perf_counter() - began - generate_s
    users = log.users()
    latest = run_time(0) + dt.timedelta(seconds=args.log_events)
    snap_began = time.perf_counter()
    snapshot = log.snapshot(latest)
    snapshot_s = time.perf_counter() - snap_began
    reconciled = {
        "events in == len(log) (distinct message ids)": size == args.log_events,
        "users == len(log.users())": len(users) == min(args.users, args.log_events),
        "snapshot(latest) has every user": len(snapshot) == len(users),
    }
    return {
        "events_in": args.log_events,
        "len_log": size,
        "users": len(users),
        "snapshot_users": len(snapshot),
        "generate_s": round(generate_s, 1),
        "build_s": round(build_s, 1),
        "snapshot_s": round(snapshot_s, 1),
        "reconciled": reconciled,
    }


def run_part(part: str, args: argparse.Namespace) -> dict[str, Any]:
    began = time.perf_counter()
    if part == "duckdb":
        url = f"duckdb:///{args.duckdb_file}" if args.duckdb_file else "duckdb://"
        figures = sync_load(url, args, f"pw_load_{os.getpid()}")
    elif part == "postgres":
        url = os.environ.get("PW_TEST_POSTGRES_URL", POSTGRES_URL)
        figures = sync_load(url, args, f"pw_load_{os.getpid()}")
    elif part == "log":
        figures = log_load(args)
    else:
        raise SystemExit(f"unknown part {part!r}: use duckdb, postgres, log")
    figures["part"] = part
    figures["wall_s"] = round(time.perf_counter() - began, 1)
    figures["peak_rss_mb"] = round(peak_rss_mb(), 1)
    figures["ok"] = all(figures["reconciled"].values())
    return figures


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=200, help="half traits, half audiences")
    parser.add_argument("--events", type=int, default=1_000_000, help="sync change events")
    parser.add_argument("--log-events", type=int, default=10_000_000)
    parser.add_argument("--parts", default="duckdb,postgres,log")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--duckdb-file", default="", help="a DuckDB file (default: in memory)")
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.child:
        print(json.dumps(run_part(args.child, args)), flush=True)
        return 0
    passed = [
        f"--users={args.users}",
        f"--keys={args.keys}",
        f"--events={args.events}",
        f"--log-events={args.log_events}",
        f"--seed={args.seed}",
        f"--duckdb-file={args.duckdb_file}",
        *(["--keep"] if args.keep else []),
    ]
    started = dt.datetime.now(dt.UTC)
    print(
        f"load: {args.events:,} sync events / {args.users:,} users / {args.keys} keys; "
        f"IdentifiesLog of {args.log_events:,} events (started {started:%Y-%m-%d %H:%M} UTC)"
    )
    ok = True
    for part in args.parts.split(","):
        proc = subprocess.run(
            [sys.executable, __file__, *passed, "--child", part],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            print(f"{part}: FAILED (exit {proc.returncode})")
            ok = False
            continue
        figures = json.loads(proc.stdout.strip().splitlines()[-1])
        ok = ok and figures["ok"]
        print(f"\n{part}: wall {figures['wall_s']}s, peak RSS {figures['peak_rss_mb']} MB")
        for name, value in figures.items():
            if name not in ("part", "wall_s", "peak_rss_mb", "reconciled", "ok"):
                print(f"  {name}: {value}")
        for check, held in figures["reconciled"].items():
            print(f"  {'ok  ' if held else 'FAIL'} {check}")
    print("\nall counts reconcile" if ok else "\nSOME COUNTS DO NOT RECONCILE")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
