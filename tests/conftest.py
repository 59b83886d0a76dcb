"""Shared fixtures: the engine matrix, one Spark session per run, unique schemas, hypothesis.

* ``engine``: parametrized over :data:`engines.ENGINES` (ids are the engine names); an engine
  that cannot run here is skipped, or fails the test when ``PW_TEST_REQUIRE`` names it.
* ``connection``: an open :class:`Connection` to that engine, closed afterwards.
* ``schema_name``: a unique schema created on ``connection`` and dropped afterwards.
* ``spark_session``: the one local Spark session of the run (started on first use).

Markers: ``slow`` (Spark-heavy or long; in the default run) and ``soak`` (huge example counts;
deselected by default, run with ``-m soak``). Hypothesis profiles: ``ci`` (the default) and
``soak``, chosen by ``PW_HYPOTHESIS_PROFILE``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from engines import ENGINES, Engine, require_available, required_engines, temporary_schema
from hypothesis import HealthCheck, settings

from personas_warehouse.runner import connections
from personas_warehouse.runner.connections import Connection

settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,  # engines and a shared JVM make timings noisy; a deadline would flake
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "soak",
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile(os.environ.get("PW_HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers and check ``PW_TEST_REQUIRE`` names real engines."""
    config.addinivalue_line("markers", "slow: Spark-heavy or long; part of the default run")
    config.addinivalue_line(
        "markers", "soak: huge example counts; deselected by default, run with -m soak"
    )
    try:
        required_engines()
    except ValueError as error:
        raise pytest.UsageError(str(error)) from error


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say which engines run, which are skipped and why, and which are required."""
    required = required_engines()
    lines = []
    for engine in ENGINES:
        reason = engine.unavailable_reason()
        state = "available" if reason is None else f"unavailable ({reason})"
        need = ", required" if engine.name in required else ""
        lines.append(f"engine {engine.name}: {state}{need}")
    lines.append(f"hypothesis profile: {settings.get_current_profile_name()}")
    try:
        from personas_warehouse import _speedups  # noqa: F401
    except ImportError:
        lines.append("C speedups: not built (the log runs its Python code)")
    else:
        lines.append("C speedups: built")
    return lines


@pytest.fixture(scope="session")
def spark_session() -> Iterator[Any]:
    """The run's one local Spark session, stopped when the run ends."""
    session = connections.spark_session()
    yield session
    connections.stop_spark_session()


@pytest.fixture(
    params=[
        pytest.param(engine, id=engine.name, marks=[pytest.mark.slow] if engine.slow else [])
        for engine in ENGINES
    ]
)
def engine(request: pytest.FixtureRequest) -> Engine:
    """Each engine in turn (skipped or failed when it cannot run here)."""
    selected: Engine = request.param
    require_available(selected)
    return selected


@pytest.fixture
def connection(engine: Engine, request: pytest.FixtureRequest) -> Iterator[Connection]:
    """An open connection to ``engine``, closed after the test."""
    if engine.session_fixture is not None:
        request.getfixturevalue(engine.session_fixture)
    conn = engine.connect()
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def schema_name(connection: Connection) -> Iterator[str]:
    """A schema of the test's own on ``connection``, dropped afterwards."""
    with temporary_schema(connection) as name:
        yield name
