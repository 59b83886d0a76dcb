"""Benchmarks of the SQL layer (prints figures and ratios; see docs/sql.md for results).

1. ``as_of_query`` on DuckDB over N events (default 1M; ``--events 10000000`` for 10M) against
   the best hand-written DuckDB query for the same answer under the same rules (dedupe by
   message id, ties by (timestamp, received_at, message_id), pivot to one row per user) over a
   narrow (message, user, key, value) table. The answers are checked equal first.

   The log is made in Python (``make_events``: ``IdentifyEvent`` objects, ~1.5 KB each) or,
   with ``--generate-in-duckdb`` (the default from 2M events), by one SQL statement inside
   DuckDB (``generate_duckdb_wide``: the same kind of log from ``range()`` and seeded
   ``hash()``: 1-3 keys per event, clears through ``cleared_keys``, ties, late arrivals,
   resent copies received later, and copies received earlier that replace the event). That
   mode keeps the tables in a temporary database file under ``--memory-limit`` (DuckDB spills
   past it), materialises each answer into a table (the time includes writing it) and
   compares the answers in SQL, so 10M events fit in a few GB:
   ``python benchmarks/bench_sql.py --events 10000000 --skip-insert``.
2. Bulk insert of N events into DuckDB and PostgreSQL with ``insert_statements`` (and
   ``insert_rows`` + executemany on PostgreSQL) against the engine's own COPY of the same rows
   from a file.

Run: ``python benchmarks/bench_sql.py [--events N] [--insert-events N] [--skip-postgres]
[--skip-as-of] [--skip-insert] [--generate-in-duckdb | --generate-in-python]
[--memory-limit 4GB]``.
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
    displaced_users_statements,
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

    create_identifies_without_key(conn)
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
    conn.register("arrow_rows", arrow_rows)
    conn.execute("INSERT INTO bench.identifies SELECT * FROM arrow_rows")
    conn.unregister("arrow_rows")


GENERATE_IN_DUCKDB_FROM = 2_000_000
"""From this many events the log is generated inside DuckDB unless told otherwise."""


def _uniform(i: str, salt: int, seed: int) -> str:
    """SQL: a uniform double in [0, 1) for row ``i``, fixed by ``salt`` and ``seed``."""
    return f"(hash({i}, {salt}, {seed}) % 1000000007) / 1000000007.0"


def _below(i: str, salt: int, seed: int, n: int) -> str:
    """SQL: a uniform integer in [0, n) for row ``i``."""
    return f"CAST(hash({i}, {salt}, {seed}) % {n} AS BIGINT)"


def generate_duckdb_wide(conn: Any, events_n: int, users: int, seed: int = 7) -> int:
    """Fill ``bench.identifies`` inside DuckDB with a log of the kind ``make_events`` makes,
    without Python objects: ``events_n`` events over ``users`` users, each carrying 1-3 of the
    7 keys (a random subset), 2% of ``plan`` values cleared (NULL, named in ``cleared_keys``),
    timestamps over 30 days in whole seconds (so ties), ``received_at`` 0-600 s later or, for
    1%, 1-3 days later (late arrivals); then 1% of the events resent as identical copies
    received a day later (ignored by the dedupe) and 0.2% as copies received an hour earlier
    by another user with other values (they replace the event). Returns the rows written.
    """
    keys = list(SPACE.keys)
    start = f"TIMESTAMPTZ '{START.isoformat()}'"
    priorities = [f"hash(i, {100 + j}, {seed})" for j in range(len(keys))]
    ranks = [
        " + ".join(
            f"CAST({priorities[k]} < {priorities[j]} AS INTEGER)"
            for k in range(len(keys))
            if k != j
        )
        for j in range(len(keys))
    ]

    def value(key: str, salt: int) -> str:
        if key == "plan":
            pick = _below("i", salt, seed, 3)
            return f"['free', 'pro', 'team'][{pick} + 1]"
        if key == "orders":
            return _below("i", salt, seed, 100)
        if key == "ltv":
            return f"{_uniform('i', salt, seed)} * 1000"
        return f"{_uniform('i', salt, seed)} < 0.6"

    carried = {key: f"_k{j}" for j, key in enumerate(keys)}
    clear = f"{_uniform('i', 50, seed)} < 0.02"
    columns = [
        "'m' || i AS id",
        f"'u' || {_below('i', 1, seed, users)} AS user_id",
        f"{start} + to_seconds({_below('i', 2, seed, 86_400 * 30)}) AS timestamp",
        f"""{start} + to_seconds({_below("i", 2, seed, 86_400 * 30)}) + CASE
              WHEN {_uniform("i", 4, seed)} < 0.01
              THEN to_seconds(86400 + {_below("i", 5, seed, 2 * 86_400)})
              ELSE to_seconds({_below("i", 3, seed, 600)}) END AS received_at""",
        f"{start} AS uuid_ts",
        f"CASE WHEN {carried['plan']} AND {clear} THEN ',plan,' END AS cleared_keys",
    ]
    for j, key in enumerate(keys):
        cleared = f" AND NOT ({clear})" if key == "plan" else ""
        columns.append(
            f'CASE WHEN {carried[key]}{cleared} THEN {value(key, 10 + j)} END AS "{key}"'
        )
    picks = ", ".join(
        f"({ranks[j]}) < 1 + {_below('i', 6, seed, 3)} AS {carried[key]}"
        for j, key in enumerate(keys)
    )
    names = ", ".join(
        f'"{c}"'
        for c in ["id", "user_id", "timestamp", "received_at", "uuid_ts", "cleared_keys", *keys]
    )
    events = f"SELECT i, {', '.join(columns)} FROM (SELECT i, {picks} FROM range({events_n}) r(i))"
    conn.execute(f"CREATE TEMP TABLE generated AS {events}")
    resent = names.replace('"received_at"', '"received_at" + INTERVAL 1 DAY')
    later = f"SELECT {resent} FROM generated WHERE {_uniform('i', 7, seed)} < 0.01"
    # a copy received an hour earlier by the next user, with the next event's values
    earlier_values = ", ".join(f'n."{key}"' for key in keys)
    earlier = f"""
        SELECT g.id, 'u' || ((CAST(substr(g.user_id, 2) AS BIGINT) + 1) % {users}), g.timestamp,
               g.received_at - INTERVAL 1 HOUR, g.uuid_ts, n.cleared_keys, {earlier_values}
        FROM generated g JOIN generated n ON n.i = (g.i + 1) % {events_n}
        WHERE {_uniform("g.i", 8, seed)} < 0.002"""
    conn.execute(f"INSERT INTO bench.identifies ({names}) SELECT {names} FROM generated")
    conn.execute(f"INSERT INTO bench.identifies ({names}) {later}")
    conn.execute(f"INSERT INTO bench.identifies ({names}) {earlier}")
    conn.execute("DROP TABLE generated")
    (rows,) = conn.execute("SELECT count(*) FROM bench.identifies").fetchone()
    return int(rows)


def create_identifies_without_key(conn: Any) -> None:
    """``bench.identifies`` as ``create_statements`` makes it, without its primary key: copies
    share a message id, and the table keeps every row (the queries dedupe anyway)."""
    for sql in create_statements(SPACE, "duckdb"):
        conn.execute(sql)
    conn.execute("ALTER TABLE bench.identifies RENAME TO identifies_pk")
    conn.execute("CREATE TABLE bench.identifies AS SELECT * FROM bench.identifies_pk LIMIT 0")
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


def _as_text(column: str) -> str:
    """SQL: a value of ours as the hand-written queries' text (``CAST(... AS VARCHAR)``, as
    the narrow table holds it)."""
    return f'CAST("{column}" AS VARCHAR)'


class Answers:
    """Run the queries and compare their answers: in Python (rows fetched, as the script always
    did) or, for large logs, inside DuckDB (each answer materialised into a table)."""

    def __init__(self, conn: Any, in_duckdb: bool) -> None:
        self.conn = conn
        self.in_duckdb = in_duckdb
        self.count = 0

    def timed(self, label: str, sql: str) -> tuple[float, Any]:
        """Best of 3; the result (rows, or the name of the table holding them)."""
        if not self.in_duckdb:
            return timed(label, lambda: self.conn.sql(sql).fetchall())
        self.count += 1
        name = f"answer_{self.count}"
        seconds, _ = timed(
            label, lambda: self.conn.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
        )
        return seconds, name

    def ours_equal_hand_written(self, ours: Any, theirs: Any) -> tuple[bool, int]:
        """Ours (``id``, the key columns, ...) against a hand-written answer (``user_id``, the
        keys as text), as text: (equal, users)."""
        keys = list(SPACE.keys)
        if not self.in_duckdb:
            expected = {r[0]: tuple(None if v is None else str(v) for v in r[1:]) for r in theirs}
            got = {}
            for row in ours:
                values = []
                for v in row[1 : 1 + len(keys)]:
                    text = str(v).lower() if isinstance(v, bool) else str(v)
                    values.append(None if v is None else text)
                got[row[0]] = tuple(values)
            return got == expected, len(got)
        mine = ", ".join(["id", *[_as_text(k) for k in keys]])
        hand = ", ".join(["user_id", *[f'"{k}"' for k in keys]])
        return self._same(f"SELECT {mine} FROM {ours}", f"SELECT {hand} FROM {theirs}"), int(
            self.conn.execute(f"SELECT count(*) FROM {ours}").fetchone()[0]
        )

    def same_rows(self, first: Any, second: Any) -> bool:
        if not self.in_duckdb:
            return bool(sorted(first) == sorted(second))
        return self._same(f"SELECT * FROM {first}", f"SELECT * FROM {second}")

    def _same(self, left: str, right: str) -> bool:
        differ = f"""SELECT count(*) FROM (
            ({left} EXCEPT ALL {right}) UNION ALL ({right} EXCEPT ALL {left}))"""
        return int(self.conn.execute(differ).fetchone()[0]) == 0


def bench_as_of(events_n: int, in_duckdb: bool, memory_limit: str) -> None:
    users = max(1000, events_n // 10)
    print(f"\nas_of_query on DuckDB: {events_n:,} events, {users:,} users, {len(SPACE.keys)} keys")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        if in_duckdb:
            # a database file and a memory limit: DuckDB spills what does not fit
            conn = duckdb.connect(os.path.join(tmp, "as_of.duckdb"))
            conn.execute(f"SET memory_limit = '{memory_limit}'")
            conn.execute(f"SET temp_directory = '{os.path.join(tmp, 'spill')}'")
            conn.execute("SET preserve_insertion_order = false")
            conn.execute("SET TimeZone = 'UTC'")
            create_identifies_without_key(conn)
            rows = generate_duckdb_wide(conn, events_n, users)
            where = "in DuckDB"
        else:
            events = make_events(events_n, users)
            rows = len(events)
            conn = duckdb.connect()
            conn.execute("SET TimeZone = 'UTC'")
            load_duckdb_wide(conn, events)
            del events
            where = "in Python"
        print(f"  (generated {rows:,} rows {where} in {time.perf_counter() - started:.1f} s)")
        load_duckdb_narrow(conn)
        answers = Answers(conn, in_duckdb)
        ts = START + dt.timedelta(days=20)
        # DuckDB's own capabilities take the one-pass ARG_MIN plan; the portable plan (what
        # every other warehouse runs) is forced by switching the flag off
        portable = capabilities("duckdb").with_flags("DuckDBPortable", filtered_arg_min=False)
        ours_time, ours = answers.timed(
            "as_of_query, portable plan (wide identifies)", as_of_query(SPACE, ts, portable)
        )
        one_time, one_rows = answers.timed(
            "as_of_query, DuckDB's plan (filtered_arg_min)", as_of_query(SPACE, ts, "duckdb")
        )
        best = float("inf")
        equal = True
        users_seen = 0
        for label, sql in hand_written_queries(ts).items():
            seconds, theirs = answers.timed(f"hand-written: {label}", sql)
            best = min(best, seconds)
            same, users_seen = answers.ours_equal_hand_written(ours, theirs)
            equal = equal and same
        print(f"  answers equal (portable vs each hand-written): {equal} ({users_seen:,} users)")
        print(f"  answers equal (DuckDB's plan vs portable): {answers.same_rows(one_rows, ours)}")
        print(f"  ratio portable plan / best hand-written: {ours_time / best:.2f}x")
        print(f"  ratio DuckDB's plan / best hand-written: {one_time / best:.2f}x (target <= 1.2x)")
        answers.timed("as_of_query ts=None (the users table)", as_of_query(SPACE, None, "duckdb"))
        conn.close()


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
                for displaced in displaced_users_statements(SPACE, few, "postgres", now=now):
                    cur.execute(displaced)
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
    generator = parser.add_mutually_exclusive_group()
    generator.add_argument(
        "--generate-in-duckdb",
        dest="in_duckdb",
        action="store_true",
        default=None,
        help=f"make the as-of log in DuckDB (default from {GENERATE_IN_DUCKDB_FROM:,} events)",
    )
    generator.add_argument(
        "--generate-in-python", dest="in_duckdb", action="store_false", help="make it in Python"
    )
    parser.add_argument(
        "--memory-limit", default="4GB", help="DuckDB memory_limit when generating in DuckDB"
    )
    args = parser.parse_args()
    if not args.skip_as_of:
        in_duckdb = args.in_duckdb
        if in_duckdb is None:
            in_duckdb = args.events >= GENERATE_IN_DUCKDB_FROM
        bench_as_of(args.events, in_duckdb, args.memory_limit)
    if not args.skip_insert:
        bench_insert(args.insert_events, args.skip_postgres, args.text_events)


if __name__ == "__main__":
    main()
