"""Every invalid input has a documented outcome: this table is the test and the docs' source.

Each case runs and must raise the named error with a message that says what to fix; a second
test holds docs/guarantees.md to the same table, so the documentation cannot drift.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import personas_warehouse as pw
from personas_warehouse.cli.spacefile import loads
from personas_warehouse.log import IdentifiesLog
from personas_warehouse.sql.ddl import create_statements, migrate_statements
from personas_warehouse.sql.dml import insert_statements

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
SPACE = pw.Space(
    traits=[
        pw.ComputedTrait("count", pw.TraitType.INTEGER),
        pw.ComputedTrait("ltv", pw.TraitType.NUMBER),
        pw.ComputedTrait("name", pw.TraitType.STRING),
        pw.ComputedTrait("hidden", pw.TraitType.STRING),
    ],
    audiences=[pw.Audience("vip")],
    excluded={"hidden"},
)


def _event(**values: Any) -> Callable[[], object]:
    return lambda: SPACE.validate_event(pw.IdentifyEvent("m1", "u1", T0, values))


def _widened(key: str, before: pw.TraitType, after: pw.TraitType) -> Callable[[], object]:
    old = pw.Space(traits=[pw.ComputedTrait(key, before)])
    new = pw.Space(traits=[pw.ComputedTrait(key, after)])
    return lambda: migrate_statements(old, new, "postgres")


# (case, input, expected error, a fragment of its message)
CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    (
        "naive event timestamp",
        lambda: pw.IdentifyEvent("m", "u", dt.datetime(2024, 1, 1)),
        pw.InvalidTimestampError,
        "has no time zone",
    ),
    (
        "naive reconstruction time",
        lambda: IdentifiesLog(SPACE).reconstruct_state("u", dt.datetime(2024, 1, 1)),
        pw.InvalidTimestampError,
        "has no time zone",
    ),
    ("NaN number", _event(ltv=math.nan), pw.UnsupportedValueError, "send None to clear"),
    ("infinite number", _event(ltv=-math.inf), pw.UnsupportedValueError, "infinity"),
    ("NUL byte in a string value", _event(name="a\x00b"), pw.UnsupportedValueError, "NUL"),
    (
        "NUL byte in an id",
        lambda: pw.IdentifyEvent("m\x00", "u", T0),
        pw.UnsupportedValueError,
        "NUL",
    ),
    ("NUL byte in a key", lambda: pw.Audience("a\x00"), pw.InvalidSpaceError, "NUL"),
    ("int past 64 bits", _event(count=2**63), pw.UnsupportedValueError, "64-bit"),
    (
        "int past 2**53 for a NUMBER",
        _event(ltv=2**53 + 1),
        pw.UnsupportedValueError,
        "declare the trait INTEGER",
    ),
    ("bool for an INTEGER trait", _event(count=True), pw.InvalidEventError, "not a number"),
    ("None for an audience", _event(vip=None), pw.InvalidEventError, "never goes back"),
    ("unknown key", _event(nope=1), pw.InvalidEventError, "known keys"),
    ("event for an excluded key", _event(hidden="x"), pw.InvalidEventError, "excluded"),
    (
        "duplicate keys",
        lambda: pw.Space(traits=[pw.ComputedTrait("a")], audiences=[pw.Audience("a")]),
        pw.InvalidSpaceError,
        "defined twice",
    ),
    (
        "colliding columns",
        lambda: pw.Space(audiences=[pw.Audience("orderID"), pw.Audience("order id")]),
        pw.ColumnCollisionError,
        "rename one of them",
    ),
    (
        "too many columns",
        lambda: create_statements(
            pw.Space(audiences=[pw.Audience(f"a{i}") for i in range(1020)]), "mysql"
        ),
        pw.ColumnLimitError,
        "exclude",
    ),
    (
        "narrowing migration",
        _widened("ltv", pw.TraitType.NUMBER, pw.TraitType.INTEGER),
        pw.MigrationError,
        "Add a new trait key",
    ),
    (
        "removed key",
        lambda: migrate_statements(
            pw.Space(audiences=[pw.Audience("a"), pw.Audience("b")]),
            pw.Space(audiences=[pw.Audience("a")]),
            "postgres",
        ),
        pw.MigrationError,
        "drop",
    ),
    (
        "unknown dialect",
        lambda: create_statements(SPACE, "nosuchdb"),
        pw.UnknownDialectError,
        "known dialects",
    ),
    (
        "id ending in a space on MySQL",
        lambda: insert_statements(
            SPACE, [pw.IdentifyEvent("m1 ", "u1", T0, {"vip": True})], "mysql"
        ),
        pw.UnsupportedValueError,
        "space",
    ),
    (
        "malformed space file",
        lambda: loads('audiences = "vip"', "space.toml"),
        pw.SpaceFileError,
        "space.toml",
    ),
]


@pytest.mark.parametrize(
    ("case", "thunk", "error", "fragment"), CASES, ids=[case for case, *_ in CASES]
)
def test_invalid_input_has_its_documented_error(
    case: str, thunk: Callable[[], object], error: type[Exception], fragment: str
) -> None:
    del case
    with pytest.raises(error) as info:
        thunk()
    assert isinstance(info.value, pw.PersonasWarehouseError)
    assert fragment.lower() in str(info.value).lower()


def test_docs_guarantees_lists_every_case() -> None:
    text = (Path(__file__).parent.parent / "docs" / "guarantees.md").read_text()
    rows = {
        line.split("|")[1].strip(): line
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith("| input")
    }
    for case, _, error, _ in CASES:
        assert case in rows, f"docs/guarantees.md has no row for {case!r}"
        assert f"`{error.__name__}`" in rows[case], f"row {case!r} does not name {error.__name__}"
