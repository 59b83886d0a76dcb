"""The short version of benchmarks/bench_load.py, run by CI every time: a few hourly syncs with
100% churn into DuckDB and a small ``IdentifiesLog``, every count reconciled exactly against
rows read back from the engine."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_load.py"


def bench_load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_load", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_load", module)
    spec.loader.exec_module(module)
    return module


def test_sync_load_reconciles_on_duckdb() -> None:
    pytest.importorskip("duckdb")
    bench = bench_load()
    args = bench.parse(["--users", "400", "--keys", "40", "--events", "1600"])
    figures = bench.sync_load("duckdb://", args, "pw_load_short")
    assert figures["runs"] == 4
    assert figures["keys"] == 40
    assert figures["events_in"] == 1600
    assert figures["identifies_rows"] == figures["distinct_ids"] == 1600
    assert figures["log_events"] == 1600
    assert figures["distinct_users"] == figures["users_rows"] == 400
    assert figures["rows_written"] == 1600 + 4 * 400  # every run rewrites every user's row
    assert figures["values_compared"] == 400 * 40
    assert all(figures["reconciled"].values()), figures["reconciled"]


def test_log_load_reconciles() -> None:
    bench = bench_load()
    args = bench.parse(["--users", "300", "--keys", "40", "--log-events", "30000"])
    figures = bench.log_load(args)
    assert figures["len_log"] == figures["events_in"] == 30_000
    assert figures["users"] == figures["snapshot_users"] == 300
    assert all(figures["reconciled"].values()), figures["reconciled"]


def test_the_benchmark_script_runs_and_reconciles(tmp_path: Path) -> None:
    """The command in the docs, at CI size: every part in its own process, exit 0."""
    import subprocess

    pytest.importorskip("duckdb")
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--users=200",
            "--keys=20",
            "--events=600",
            "--log-events=5000",
            "--parts=duckdb,log",
            f"--duckdb-file={tmp_path / 'load.duckdb'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all counts reconcile" in proc.stdout
    assert proc.stdout.count("ok   ") == 7 + 3
    assert "peak RSS" in proc.stdout
