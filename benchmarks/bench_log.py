"""Benchmark: IdentifiesLog against DuckDB and polars on the same synthetic log.

Run ``python benchmarks/bench_log.py`` (1M events, 100k users, 50 keys, one year) or
``--events 100000`` for a quick run. Prints figures and ratios measured side by side in one run:

- building the log (validation and all the indexing reads need), per million events, with the
  C speedups (``personas_warehouse._speedups``) and without them in the same run; the
  message-id hash table, needed only by adds to a non-empty log, is built by the first of them,
  timed on its own; and the same log built from warehouse-shaped columns
  (``IdentifiesLog.from_columns``, as ``Warehouse.load_log`` does);
- memory the log retains once the caller has dropped its event objects (tracemalloc), per event;
- ``reconstruct_state`` median per call against a parameterised DuckDB single-user query on a
  table sorted by user (the same question, the same data);
- ``snapshot(ts)`` of every user against polars filter + sort + group_by (and DuckDB).

The data is deterministic (``--seed``): each event sets 1 to 3 keys (about a fifth of trait
values are explicit clears), 2% of events arrive late (hours to days), 1% of message ids are
sent twice, message ids are 36-character UUIDs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import random
import statistics
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable
from functools import partial
from itertools import chain
from operator import attrgetter
from pathlib import Path
from types import MappingProxyType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from reference import as_columns

from personas_warehouse import log as log_module
from personas_warehouse.log import IdentifiesLog, _accelerated
from personas_warehouse.model import Audience, ComputedTrait, IdentifyEvent, Space, TraitType

START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
YEAR_US = 365 * 86_400 * 1_000_000
TRAIT_TYPES = [TraitType.INTEGER, TraitType.NUMBER, TraitType.STRING, TraitType.BOOLEAN]
PLANS = ["free", "starter", "pro", "enterprise", "churned"]


def make_space(keys: int) -> Space:
    traits = [ComputedTrait(f"trait_{i}", TRAIT_TYPES[i % 4]) for i in range(keys // 2)]
    audiences = [Audience(f"audience_{i}") for i in range(keys - keys // 2)]
    return Space(traits=traits, audiences=audiences)


def trait_value(rng: random.Random, kind: TraitType) -> Any:
    if rng.random() < 0.2:
        return None  # an explicit clear
    if kind is TraitType.INTEGER:
        return rng.randrange(10_000)
    if kind is TraitType.NUMBER:
        return round(rng.random() * 1000, 2)
    if kind is TraitType.STRING:
        return rng.choice(PLANS)
    return rng.random() < 0.5


def make_events(space: Space, count: int, users: int, seed: int) -> list[IdentifyEvent]:
    """A deterministic log in received_at order, as a loader reads it from a warehouse (the
    event objects are created in that order too, as a loader would create them)."""
    rng = random.Random(seed)
    traits = list(space.traits)
    audiences = list(space.audience_keys)
    user_ids = [f"user-{n:06d}" for n in range(users)]
    arrivals = sorted(rng.randrange(YEAR_US) for _ in range(count))
    events: list[IdentifyEvent] = []
    for arrival in arrivals:
        user = user_ids[rng.randrange(users)]
        received = START + dt.timedelta(microseconds=arrival)
        timestamp = received
        if rng.random() < 0.02:  # a late arrival: it happened hours or days before
            timestamp = received - dt.timedelta(seconds=rng.randrange(3600, 5 * 86_400))
        values: dict[str, Any] = {}
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.5:
                trait = rng.choice(traits)
                values[trait.key] = trait_value(rng, trait.type)
            else:
                values[rng.choice(audiences)] = rng.random() < 0.6
        message_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        events.append(IdentifyEvent(message_id, user, timestamp, values, received_at=received))
        if rng.random() < 0.01:  # a resend: the same message delivered again
            events.append(IdentifyEvent(message_id, user, timestamp, values, received_at=received))
    return events


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def median_call(function: Callable[..., Any], arguments: list[tuple[Any, ...]]) -> float:
    """Median seconds per call of ``function(*args)``, over individually timed calls (the
    timer's own cost, about 0.1 us, included)."""
    samples = []
    clock = time.perf_counter
    append = samples.append
    for args in arguments:
        start = clock()
        function(*args)
        append(clock() - start)
    return statistics.median(samples)


def resend(event: IdentifyEvent) -> IdentifyEvent:
    """The same message delivered again a day later: it loses to the copy already in the log,
    so adding it leaves the log's content unchanged (but makes the log index an add)."""
    return IdentifyEvent(
        event.message_id,
        event.user_id,
        event.timestamp,
        event.values,
        received_at=event.received_at + dt.timedelta(days=1),
    )


def add_and_read(log: IdentifiesLog, event: IdentifyEvent) -> int:
    log.add(event)
    return len(log)


def read_fields(events: list[IdentifyEvent]) -> int:
    """The floor of any index built from event objects: every field read off the objects into
    lists (C-level passes) and the (key, value) pairs flattened; nothing converted, sorted or
    checked."""
    columns = [
        list(map(attrgetter(name), events))
        for name in ("message_id", "user_id", "timestamp", "received_at")
    ]
    values = map(attrgetter("values"), events)
    pairs = list(chain.from_iterable(map(MappingProxyType.items, values)))
    return len(columns[0]) + len(pairs)


def build_without_speedups(space: Space, events: list[IdentifyEvent]) -> int:
    """The build where the C speedups are not built (pure Python, numpy where installed)."""
    compiled = log_module._SPEEDUPS
    log_module._SPEEDUPS = None
    try:
        log = IdentifiesLog(space, events)
        return len(log)
    finally:
        log_module._SPEEDUPS = compiled


def build_from_columns(space: Space, columns: dict[str, Any]) -> int:
    log = IdentifiesLog.from_columns(space, **columns)
    return len(log)


def polars_build(events: list[IdentifyEvent]) -> Any:
    """polars given the same event objects: the scalar fields into a frame, copies dropped by
    the dedupe rank, rows sorted by (user, timestamp, received_at, message id). The values are
    left out (a frame has no column for values of mixed types), so this is a lower bound."""
    import polars as pl

    frame = pl.DataFrame(
        {
            name: list(map(attrgetter(name), events))
            for name in ("message_id", "user_id", "timestamp", "received_at")
        }
    )
    return (
        frame.sort(["received_at", "timestamp", "user_id"])
        .unique("message_id", keep="first", maintain_order=True)
        .sort(["user_id", "timestamp", "received_at", "message_id"])
    )


def measure_memory(space: Space, count: int, users: int, seed: int) -> tuple[float, float]:
    """Bytes per event the log retains after the caller drops its events (tracemalloc): once
    built and read, and again after a later add has built the message-id hash table."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    events = make_events(space, count, users, seed)
    late = resend(events[0])
    log = IdentifiesLog(space, events)
    len(log)  # index
    del events
    gc.collect()
    retained = tracemalloc.get_traced_memory()[0] - before
    log.add(late)
    len(log)
    gc.collect()
    with_table = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    per_event = retained / len(log), with_table / len(log)
    del log
    return per_event


def load_engines(space: Space, log: IdentifiesLog) -> tuple[Any, Any]:
    """The deduplicated events as a polars frame and a DuckDB table sorted by user (wide: one
    column per key; ``cleared_keys`` lists explicit clears, as the warehouse table does)."""
    import duckdb
    import polars as pl

    keys = space.keys
    rows = []
    for event in log.events():
        cleared = [k for k, v in event.values.items() if v is None]
        rows.append(
            (
                event.message_id,
                event.user_id,
                event.timestamp,
                event.received_at,
                "," + ",".join(cleared) + "," if cleared else None,
                *(event.values.get(k) for k in keys),
            )
        )
    schema = ["id", "user_id", "timestamp", "received_at", "cleared_keys", *keys]
    frame = pl.DataFrame(rows, schema=schema, orient="row", infer_schema_length=None)
    del rows
    con = duckdb.connect()
    con.register("frame", frame)
    con.execute("CREATE TABLE identifies AS SELECT * FROM frame ORDER BY user_id, timestamp")
    con.unregister("frame")
    return con, frame


def state_sql(space: Space, where: str) -> str:
    """One SELECT: per user, every key's value from the last event carrying it (a NULL that
    is an explicit clear counts; ties by received_at then message id)."""
    order = "(timestamp, received_at, id)"
    parts = []
    for key in space.keys:
        carries = f"\"{key}\" IS NOT NULL OR contains(cleared_keys, ',{key},')"
        parts.append(f'arg_max_null("{key}", {order}) FILTER (WHERE {carries}) AS "{key}"')
    return f"SELECT user_id, {', '.join(parts)} FROM identifies WHERE {where} GROUP BY user_id"


def polars_snapshot(frame: Any, ts: dt.datetime) -> Any:
    """polars filter + sort + group_by: each key's last non-null value per user at ts."""
    import polars as pl

    return (
        frame.lazy()
        .filter(pl.col("timestamp") <= ts)
        .sort(["user_id", "timestamp", "received_at", "id"])
        .group_by("user_id")
        .agg(pl.all().exclude("id", "timestamp", "received_at", "cleared_keys").drop_nulls().last())
        .collect()
    )


def compare(space: Space, log: IdentifiesLog, args: argparse.Namespace) -> None:
    """reconstruct_state against DuckDB, snapshot against polars and DuckDB."""
    rng = random.Random(args.seed + 1)
    user_ids = log.users()
    questions = [
        (rng.choice(user_ids), START + dt.timedelta(microseconds=rng.randrange(YEAR_US)))
        for _ in range(args.calls)
    ]
    python_median = median_call(log.reconstruct_state, questions)
    known_median = median_call(
        lambda user, ts: log.reconstruct_state(user, ts, known_at=ts), questions[: args.calls // 4]
    )
    print(
        f"reconstruct_state: median {python_median * 1e6:.2f} us per call ({args.keys} keys)"
        f"   [target <= 5 us]; with known_at: {known_median * 1e6:.2f} us"
    )

    seconds, (con, frame) = timed(partial(load_engines, space, log))
    print(f"  (loaded DuckDB and polars in {seconds:.1f} s, not measured)")
    con.execute("PREPARE single_user AS " + state_sql(space, "user_id = $1 AND timestamp <= $2"))

    def ask_duckdb(question: tuple[str, dt.datetime]) -> Any:
        user, ts = question
        return con.execute(
            f"EXECUTE single_user('{user}', TIMESTAMPTZ '{ts.isoformat()}')"
        ).fetchall()

    for question in questions[:20]:  # warm up, and check DuckDB answers the same question
        row = ask_duckdb(question)
        expected = log.reconstruct_state(*question)
        want = {**expected.traits, **expected.audiences}
        got = dict(zip(space.keys, row[0][1:], strict=True)) if row else dict.fromkeys(want)
        if got != want:
            raise SystemExit(f"DuckDB disagrees with the log on {question}: {got} != {want}")
    duck_median = median_call(ask_duckdb, [(q,) for q in questions[:300]])
    print(
        f"DuckDB single-user query (prepared): median {duck_median * 1e3:.2f} ms per call -> "
        f"reconstruct_state is {duck_median / python_median:.0f}x faster   [target >= 300x]"
    )
    fetch = "SELECT * FROM identifies WHERE user_id = $1 AND timestamp <= $2"
    fetch_median = median_call(
        lambda user, ts: con.execute(fetch, [user, ts]).fetchall(), questions[:300]
    )
    print(
        f"  DuckDB lower bound, only fetching the user's rows (no fold): median "
        f"{fetch_median * 1e3:.2f} ms -> reconstruct_state is "
        f"{fetch_median / python_median:.0f}x faster"
    )

    middle = START + dt.timedelta(days=182)
    python_snapshot = min(timed(partial(log.snapshot, middle))[0] for _ in range(3))
    size = len(log.snapshot(middle))
    polars_seconds = min(timed(partial(polars_snapshot, frame, middle))[0] for _ in range(3))
    every = state_sql(space, "timestamp <= $1")
    duck_snapshot = min(
        timed(partial(lambda: con.execute(every, [middle]).fetchall()))[0] for _ in range(3)
    )
    print(
        f"snapshot(mid-year) of {size:,} users: {python_snapshot:.3f} s; polars filter+sort+"
        f"group_by {polars_seconds:.3f} s -> ratio {python_snapshot / polars_seconds:.2f}x"
        f"   [target <= 2x]; DuckDB GROUP BY {duck_snapshot:.3f} s -> ratio "
        f"{python_snapshot / duck_snapshot:.2f}x"
    )
    con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=None, help="default: events / 10")
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--seed", type=int, default=20180417)
    parser.add_argument("--calls", type=int, default=20_000, help="reconstruct_state calls")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    users = args.users or max(1, args.events // 10)
    space = make_space(args.keys)
    print(f"synthetic log: {args.events:,} events, {users:,} users, {args.keys} keys, one year")

    seconds, events = timed(partial(make_events, space, args.events, users, args.seed))
    print(f"  generated {len(events):,} IdentifyEvents in {seconds:.1f} s (not measured)")
    gc.collect()
    _accelerated()  # imports numpy where installed: a pipeline pays that once, not per log
    build, log = timed(partial(IdentifiesLog, space, events))
    index, _ = timed(log.__len__)  # the whole index: every read after this is ready
    middle = START + dt.timedelta(days=182)
    first_snapshot, _ = timed(partial(log.snapshot, middle))
    count = len(events)
    late = resend(events[0])
    gc.collect()
    floor = min(timed(partial(read_fields, events))[0] for _ in range(2))
    gc.collect()
    peer = min(timed(partial(polars_build, events))[0] for _ in range(2))
    gc.collect()
    speedups = log_module._SPEEDUPS is not None
    without = timed(partial(build_without_speedups, space, events))[0] if speedups else None
    events_kept = events
    del events
    gc.collect()
    total = build + index
    print(
        f"build: {total:.2f} s for {count:,} events (validate and flatten {build:.2f} s"
        f" + index {index:.2f} s) = {total / count * 1e6:.2f} s per million events"
        f"   [target <= 1 s]; C speedups: {'on' if speedups else 'off (not built)'}; "
        f"numpy: {'on' if _accelerated() else 'off'}"
    )
    if without is not None:
        print(
            f"  the same build without the C speedups (numpy where installed): {without:.2f} s "
            f"-> the speedups build {without / total:.1f}x faster"
        )
    print(
        f"  reading the fields off the same objects (the floor) {floor:.2f} s -> build is "
        f"{total / floor:.1f}x the floor; polars from the same objects (no values, a lower "
        f"bound) {peer:.2f} s -> ratio {total / peer:.2f}x"
    )
    gc.collect()
    columns = as_columns(space, events_kept)
    from_columns, _ = timed(partial(build_from_columns, space, columns))
    del columns, events_kept
    gc.collect()
    print(
        f"  from columns (IdentifiesLog.from_columns, the same events as warehouse-shaped "
        f"columns, index included): {from_columns:.2f} s = "
        f"{from_columns / count * 1e6:.2f} s per million events   [target <= 1 s]"
    )
    later, _ = timed(partial(add_and_read, log, late))
    print(
        f"  then the first snapshot {first_snapshot:.2f} s (nothing left to index); the first"
        f" add to the built log {later:.2f} s (once: builds the message-id hash table that"
        " only adds to a non-empty log need, and re-places the user it touches)"
    )

    compare(space, log, args)
    del log
    gc.collect()

    if not args.skip_memory:
        per_event, with_table = measure_memory(space, args.events, users, args.seed)
        print(
            f"memory retained by the log: {per_event:.0f} bytes per event (tracemalloc, after "
            f"the caller dropped its events)   [target <= 150 B]; {with_table:.0f} B once a "
            "later add has built the message-id hash table"
        )


if __name__ == "__main__":
    main()
