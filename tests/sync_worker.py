"""A deterministic multi-run sync simulation, and a worker process that runs it.

Imported by the tests and the benchmark for :class:`Simulation`; run as a script by the fault
tests, which SIGKILL it at random points and run it again::

    python tests/sync_worker.py --url duckdb:///tmp/x.db --schema s --users 500 --runs 6

The worker syncs runs ``0 .. runs-1`` (run ``r`` at ``T0 + r hours``), skipping the runs the
warehouse already has (its freshness), so running it again after a kill finishes the job. Its
clock is deterministic (``received_at = at + 30 s``), so two workers given the same arguments
write the same rows (``uuid_ts`` aside, which is the load time).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: make the package importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import personas_warehouse as pw
from personas_warehouse.sync import ComputedResults

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
_TYPES = [
    pw.TraitType.NUMBER,
    pw.TraitType.INTEGER,
    pw.TraitType.STRING,
    pw.TraitType.BOOLEAN,
    pw.TraitType.TIMESTAMP,
    pw.TraitType.JSON,
]


def run_time(run: int) -> dt.datetime:
    """The ``at`` of run ``run``: hourly from :data:`T0`."""
    return T0 + dt.timedelta(hours=run)


def received(at: dt.datetime) -> dt.datetime:
    """The deterministic ``received_at`` the worker's clock gives a run at ``at``."""
    return at + dt.timedelta(seconds=30)


def simulation_space(traits: int, audiences: int, schema: str = pw.DEFAULT_SCHEMA) -> pw.Space:
    """A space with ``traits`` traits of every type in turn and ``audiences`` audiences."""
    return pw.Space(
        traits=[pw.ComputedTrait(f"trait_{i}", _TYPES[i % len(_TYPES)]) for i in range(traits)],
        audiences=[pw.Audience(f"audience_{i}") for i in range(audiences)],
        schema=schema,
    )


class Simulation:
    """Hourly computed results for a population: run 0 computes everything, then each run a
    ``churn`` share of the users change a few traits (a clear now and then) and enter or leave
    a few audiences. Deterministic for a seed."""

    def __init__(self, space: pw.Space, users: int, *, churn: float = 0.05, seed: int = 0) -> None:
        self.space = space
        self.users = [f"user_{i:07d}" for i in range(users)]
        self.churn = churn
        self.rng = random.Random(seed)
        self.run = -1
        self.traits: dict[str, dict[str, Any]] = {}
        self.members: dict[str, set[str]] = {}

    def _value(self, type_: pw.TraitType) -> Any:
        rng = self.rng
        if rng.random() < 0.05:
            return None
        if type_ is pw.TraitType.NUMBER:
            return rng.choice([round(rng.uniform(0, 1000), 2), rng.randrange(100)])
        if type_ is pw.TraitType.INTEGER:
            return rng.randrange(-(10**6), 10**6)
        if type_ is pw.TraitType.STRING:
            return rng.choice(["gold", "silver", "o'brien", 'say "hi"', "naïve ✓", ""])
        if type_ is pw.TraitType.BOOLEAN:
            return rng.random() < 0.5
        if type_ is pw.TraitType.TIMESTAMP:
            return T0 - dt.timedelta(
                minutes=rng.randrange(10**5), microseconds=rng.randrange(10**6)
            )
        return rng.choice([{"plan": "pro", "seats": rng.randrange(5)}, [1, 1.0, True], "x", 2.5])

    def next(self) -> ComputedResults:
        """The results of the next run."""
        self.run += 1
        types = self.space.trait_types
        trait_keys = self.space.trait_keys
        audience_keys = self.space.audience_keys
        if self.run == 0:
            for user in self.users:
                self.traits[user] = {k: self._value(types[k]) for k in trait_keys}
            for key in audience_keys:
                self.members[key] = {u for u in self.users if self.rng.random() < 0.3}
        else:
            changed = self.rng.sample(self.users, max(1, int(len(self.users) * self.churn)))
            for user in changed:
                for key in self.rng.sample(trait_keys, min(3, len(trait_keys))):
                    self.traits[user][key] = self._value(types[key])
                for key in self.rng.sample(audience_keys, min(2, len(audience_keys))):
                    self.members[key] ^= {user}
        return ComputedResults(traits=self.traits, audiences=self.members)

    def results_for(self, run: int) -> ComputedResults:
        """The results of run ``run`` (runs forward from where the simulation is)."""
        if run < self.run:
            raise ValueError(f"the simulation is at run {self.run}; make a new one for run {run}")
        results = None
        while self.run < run:
            results = self.next()
        if results is None:
            results = ComputedResults(traits=self.traits, audiences=self.members)
        return results


def main(argv: list[str] | None = None) -> int:
    """Run the simulation's syncs into ``--url``, skipping runs the warehouse already has."""
    from personas_warehouse.runner.connections import connect_url
    from personas_warehouse.runner.warehouse import SyncProgress, Warehouse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--traits", type=int, default=6)
    parser.add_argument("--audiences", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch-rows", type=int, default=50)
    parser.add_argument("--pause", type=float, default=0.0, help="sleep per progress report")
    args = parser.parse_args(argv)

    space = simulation_space(args.traits, args.audiences, args.schema)
    conn = connect_url(args.url)
    warehouse = Warehouse(conn, space, batch_rows=args.batch_rows)
    warehouse.setup()
    simulation = Simulation(space, args.users, seed=args.seed)
    fresh = warehouse.freshness()
    for run in range(args.runs):
        at = run_time(run)
        results = simulation.results_for(run)
        if fresh is not None and at < fresh.at:
            continue

        def pause(report: SyncProgress, run: int = run) -> None:
            print(f"run {run} {report.stage} {report.done}/{report.total}", flush=True)
            time.sleep(args.pause)

        result = warehouse.sync(
            results,
            at=at,
            clock=lambda at=at: received(at),
            progress=pause if args.pause else None,
        )
        print(f"run {run} committed {result.rows_written} rows", flush=True)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
