"""Benchmarks of the SQL layer (prints figures and ratios; see docs/sql.md for results).

1. ``as_of_query`` on DuckDB over N events (default 1M; ``--events 10000000`` for 10M) against
   the best hand-written DuckDB query for the same answer under the same rules (dedupe by
   message id, ties by (timestamp, received_at, message_id), pivot to one row per user) over a
   narrow (message, user, key, value) table. The answers are checked equal first.
2. Bulk insert of N events into DuckDB and PostgreSQL with ``insert_statements`` (and
   ``insert_rows`` + executemany on PostgreSQL) against the engine's own COPY of the same rows
   from a file.

Run: ``python benchmarks/bench_sql.py [--events N] [--insert-events N] [--skip-postgres]``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import random
import tempfile
import time
from collections.abc import Callable
from typing import Any

import duckdb

from personas_warehouse.model import Audience, ComputedTrait, IdentifyEvent, Space, TraitType
from personas_warehouse.sql.ddl import create_statements
from personas_warehouse.sql.dml import (
    cleared_keys,
    insert_rows,
    insert_statements,
    refresh_users_statements,
    staged_insert_statements,
)
from personas_warehouse.sql.query import as_of_query
from personas_warehouse.warehouses import capabilities

SPACE = Space(
    traits=[
        ComputedTrait("plan"),
        ComputedTrait("orders", TraitType.INTEGER),
        ComputedTrait("ltv", TraitType.NUMBER),
        ComputedTrait("paying", TraitType.BOOLEAN),
    ],
    audiences=[Audience("vip"), Audience("churn_risk"), Audience("newsletter")],
    schema="bench",
)
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def make_events(n: int, users: int, seed: int = 7) -> list[IdentifyEvent]:
    """n events over ``users`` users: 1-3 keys each, 2% clears, 1% resent copies, ties."""
    rng = random.Random(seed)
    events: list[IdentifyEvent] = []
    keys = list(SPACE.keys)
    for i in range(n):
        ts = START + dt.timedelta(seconds=rng.randrange(0, 86_400 * 30))
        values: dict[str, Any] = {}
        for key in rng.sample(keys, rng.randint(1, 3)):
            if key == "plan":
                values[key] = None if rng.random() < 0.02 else rng.choice(["free", "pro", "team"])
            elif key == "orders":
                values[key] = rng.randrange(100)
            elif key == "ltv":
                values[key] = rng.random() * 1000
            else:
                values[key] = rng.random() < 0.6
        received = ts + dt.timedelta(seconds=rng.randrange(0, 600))
        events.append(IdentifyEvent(f"m{i}", f"u{rng.randrange(users)}", ts, values, received))
        if rng.random() < 0.01:  # a resent copy, received later (ignored by the dedupe)
            events.append(
                IdentifyEvent(f"m{i}", events[-1].user_id, ts, values, received + dt.timedelta(1))
            )
    return events


def timed(label: str, fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    best = float("inf")
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    print(f"  {label:<58} {best:8.3f} s")
    return best, result


def load_duckdb_wide(conn: Any, events: list[IdentifyEvent]) -> None:
    """Load identifies fast (not what is measured): through a pyarrow table."""
    import pyarrow as pa

    for sql in create_statements(SPACE, "duckdb"):
        conn.execute(sql)
    cols: dict[str, list[Any]] = {
        "id": [e.message_id for e in events],
        "user_id": [e.user_id for e in events],
        "timestamp": [e.timestamp for e in events],
        "received_at": [e.received_at for e in events],
        "uuid_ts": [START] * len(events),
        "cleared_keys": [cleared_keys(SPACE, e, "duckdb") for e in events],
    }
    for key in SPACE.keys:
        cols[key] = [e.values.get(key) for e in events]
    arrow_rows = pa.table(cols)
    # copies share a message id; identifies keeps every row here (the query dedupes anyway)
    conn.execute("ALTER TABLE bench.identifies RENAME TO identifies_pk")
    conn.execute("CREATE TABLE bench.identifies AS SELECT * FROM bench.identifies_pk LIMIT 0")
    conn.register("arrow_rows", arrow_rows)
    conn.execute("INSERT INTO bench.identifies SELECT * FROM arrow_rows")
    conn.execute("DROP TABLE bench.identifies_pk")


def load_duckdb_narrow(conn: Any) -> None:
    """The narrow table the hand-written query reads: one row per (event, key)."""
    unpivots = []
    for key in SPACE.keys:
        value = f'CAST("{key}" AS VARCHAR)'
        carried = f"\"{key}\" IS NOT NULL OR position(',{key},' IN coalesce(cleared_keys, '')) > 0"
        unpivots.append(
            f"SELECT id AS message_id, user_id, timestamp, received_at, '{key}' AS key, "
            f"{value} AS value FROM bench.identifies WHERE {carried}"
        )
    conn.execute("CREATE TABLE bench.narrow AS " + " UNION ALL ".join(unpivots))


def hand_written_queries(ts: dt.datetime) -> dict[str, str]:
    bound = f"TIMESTAMPTZ '{ts.isoformat()}'"
    keys = ", ".join(f"'{k}'" for k in SPACE.keys)
    dedup_window = """
        SELECT * FROM bench.narrow
        QUALIFY dense_rank() OVER (PARTITION BY message_id
                                   ORDER BY received_at, timestamp, user_id) = 1"""
    return {
        "qualify + arg_max + pivot": f"""
            WITH latest AS (
              SELECT user_id, key,
                     arg_max(struct_pack(v := value),
                             (timestamp, received_at, message_id)).v AS value
              FROM ({dedup_window})
              WHERE timestamp <= {bound}
              GROUP BY user_id, key)
            PIVOT latest ON key IN ({keys}) USING any_value(value) GROUP BY user_id""",
        "qualify + row_number + pivot": f"""
            WITH counted AS ({dedup_window}), latest AS (
              SELECT user_id, key, value FROM counted WHERE timestamp <= {bound}
              QUALIFY row_number() OVER (PARTITION BY user_id, key
                ORDER BY timestamp DESC, received_at DESC, message_id DESC) = 1)
            PIVOT latest ON key IN ({keys}) USING any_value(value) GROUP BY user_id""",
        "arg_min dedupe + arg_max + pivot": f"""
            WITH copies AS (
              SELECT message_id, arg_min((user_id, timestamp, received_at),
                                         (received_at, timestamp, user_id)) AS pick
              FROM bench.narrow GROUP BY message_id),
            counted AS (
              SELECT n.* FROM bench.narrow n JOIN copies c USING (message_id)
              WHERE (n.user_id, n.timestamp, n.received_at) = c.pick),
            latest AS (
              SELECT user_id, key,
                     arg_max(struct_pack(v := value),
                             (timestamp, received_at, message_id)).v AS value
              FROM counted WHERE timestamp <= {bound} GROUP BY user_id, key)
            PIVOT latest ON key IN ({keys}) USING any_value(value) GROUP BY user_id""",
    }


def bench_as_of(events_n: int) -> None:
    users = max(1000, events_n // 10)
    print(f"\nas_of_query on DuckDB: {events_n:,} events, {users:,} users, {len(SPACE.keys)} keys")
    started = time.perf_counter()
    events = make_events(events_n, users)
    print(f"  (generated {len(events):,} rows in {time.perf_counter() - started:.1f} s)")
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    load_duckdb_wide(conn, events)
    load_duckdb_narrow(conn)
    del events
    ts = START + dt.timedelta(days=20)
    ours_sql = as_of_query(SPACE, ts, "duckdb")
    ours_time, ours = timed(
        "as_of_query, portable plan (wide identifies)", lambda: conn.sql(ours_sql).fetchall()
    )
    one_pass = type("DuckDBArgMax", (type(capabilities("duckdb")),), {"struct_arg_max": True})()
    one_pass_sql = as_of_query(SPACE, ts, one_pass)
    one_time, one_rows = timed(
        "as_of_query, struct_arg_max plan (wide identifies)",
        lambda: conn.sql(one_pass_sql).fetchall(),
    )
    best = float("inf")
    expected: dict[str, tuple[Any, ...]] = {}
    for label, sql in hand_written_queries(ts).items():
        seconds, rows = timed(f"hand-written: {label}", lambda sql=sql: conn.sql(sql).fetchall())
        best = min(best, seconds)
        expected = {r[0]: tuple(None if v is None else str(v) for v in r[1:]) for r in rows}
    got = {}
    for row in ours:
        values = []
        for v in row[1 : 1 + len(SPACE.keys)]:
            values.append(None if v is None else str(v).lower() if isinstance(v, bool) else str(v))
        got[row[0]] = tuple(values)
    same = got == expected
    print(f"  answers equal (portable vs hand-written): {same} ({len(got):,} users)")
    print(f"  answers equal (struct_arg_max vs portable): {sorted(one_rows) == sorted(ours)}")
    print(f"  ratio portable plan / best hand-written: {ours_time / best:.2f}x (target <= 1.2x)")
    print(f"  ratio struct_arg_max plan / best hand-written: {one_time / best:.2f}x")
    ours_all = as_of_query(SPACE, None, "duckdb")
    timed("as_of_query ts=None (the users table)", lambda: conn.sql(ours_all).fetchall())


def bench_insert(events_n: int, skip_postgres: bool, text_n: int) -> None:
    print(f"\nbulk insert of {events_n:,} events (+ the users rows)")
    events = make_events(events_n, max(1000, events_n // 10), seed=11)
    now = START + dt.timedelta(days=60)
    rows = insert_rows(SPACE, events, "duckdb")[1]  # one row per message id, parameter values
    few = events[:text_n]
    stage_space = Space(traits=SPACE.traits, audiences=SPACE.audiences, schema="bench_stage")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rows.csv")
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            for row in rows:
                writer.writerow(["" if v is None else v for v in row])

        def duck_fresh() -> Any:
            conn = duckdb.connect()
            conn.execute("SET TimeZone = 'UTC'")
            for space in (SPACE, stage_space):
                for sql in create_statements(space, "duckdb"):
                    conn.execute(sql)
            return conn

        def duck_copy() -> None:
            conn = duck_fresh()
            conn.execute(f"COPY bench.identifies FROM '{path}' (HEADER false, NULLSTR '')")
            for sql in refresh_users_statements(SPACE, None, "duckdb", now=now):
                conn.execute(sql)

        def duck_staged() -> None:
            conn = duck_fresh()
            conn.execute(f"COPY bench_stage.identifies FROM '{path}' (HEADER false, NULLSTR '')")
            for sql in staged_insert_statements(
                SPACE, "identifies", "duckdb", staging_schema="bench_stage", now=now
            ):
                conn.execute(sql)

        def duck_text() -> None:
            conn = duck_fresh()
            for sql in insert_statements(SPACE, few, "duckdb", now=now):
                conn.execute(sql)

        theirs, _ = timed("DuckDB COPY into identifies + users rebuild (baseline)", duck_copy, 1)
        staged, _ = timed("DuckDB COPY into staging + staged_insert_statements", duck_staged, 1)
        text, _ = timed(f"DuckDB insert_statements, {len(few):,} events", duck_text, 1)
        print(f"  ratio staged / baseline: {staged / theirs:.2f}x (target <= 2x)")
        print(
            f"  insert_statements: {text / len(few) * 1e6:.0f} us/event, "
            f"~{text / len(few) * events_n:.0f} s for {events_n:,} "
            f"({text / len(few) * events_n / theirs:.0f}x the baseline)"
        )
        if skip_postgres:
            return
        import psycopg

        url = os.environ.get("PW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

        def pg_fresh() -> Any:
            conn = psycopg.connect(url, autocommit=True, options="-c TimeZone=UTC")
            for space in (SPACE, stage_space):
                conn.execute(f"DROP SCHEMA IF EXISTS {space.schema} CASCADE")
                for sql in create_statements(space, "postgres"):
                    conn.execute(sql)
            return conn

        def pg_copy_into(conn: Any, schema: str) -> None:
            with (
                conn.cursor() as cur,
                open(path, "rb") as handle,
                cur.copy(f"COPY {schema}.identifies FROM STDIN (FORMAT csv, NULL '')") as copy,
            ):
                while data := handle.read(1 << 20):
                    copy.write(data)

        def pg_copy() -> None:
            conn = pg_fresh()
            with conn.transaction():
                pg_copy_into(conn, "bench")
                for sql in refresh_users_statements(SPACE, None, "postgres", now=now):
                    conn.execute(sql)

        def pg_staged() -> None:
            conn = pg_fresh()
            with conn.transaction():
                pg_copy_into(conn, "bench_stage")
                for sql in staged_insert_statements(
                    SPACE, "identifies", "postgres", staging_schema="bench_stage", now=now
                ):
                    conn.execute(sql)

        def pg_text() -> None:
            conn = pg_fresh()
            with conn.transaction():
                for sql in insert_statements(SPACE, few, "postgres", now=now):
                    conn.execute(sql)

        def pg_rows() -> None:
            conn = pg_fresh()
            sql, params = insert_rows(SPACE, few, "postgres", paramstyle="format")
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(sql, params)
                for refresh in refresh_users_statements(SPACE, None, "postgres", now=now):
                    cur.execute(refresh)

        theirs, _ = timed("Postgres COPY into identifies + users rebuild (baseline)", pg_copy, 1)
        staged, _ = timed("Postgres COPY into staging + staged_insert_statements", pg_staged, 1)
        text, _ = timed(f"Postgres insert_statements, {len(few):,} events", pg_text, 1)
        many, _ = timed(f"Postgres insert_rows executemany, {len(few):,} events", pg_rows, 1)
        print(f"  ratio staged / baseline: {staged / theirs:.2f}x (target <= 2x)")
        for label, seconds in (("insert_statements", text), ("executemany", many)):
            print(
                f"  {label}: {seconds / len(few) * 1e6:.0f} us/event, "
                f"~{seconds / len(few) * events_n:.0f} s for {events_n:,}"
            )
        conn = pg_fresh()
        conn.execute("DROP SCHEMA bench CASCADE")
        conn.execute("DROP SCHEMA bench_stage CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--insert-events", type=int, default=1_000_000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-insert", action="store_true")
    parser.add_argument("--skip-as-of", action="store_true")
    parser.add_argument(
        "--text-events", type=int, default=20_000, help="events for the text (VALUES) path"
    )
    args = parser.parse_args()
    if not args.skip_as_of:
        bench_as_of(args.events)
    if not args.skip_insert:
        bench_insert(args.insert_events, args.skip_postgres, args.text_events)


if __name__ == "__main__":
    main()
