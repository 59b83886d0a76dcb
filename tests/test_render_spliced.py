"""The displaced-users statements of a large batch are rendered once from two probe events and
the batch's rows spliced in as text (``dml._render_displaced``): the result must be the very
statement sqlglot renders from the real trees, in every dialect, whatever the ids hold."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personas_warehouse.model import Audience, ComputedTrait, IdentifyEvent, Space
from personas_warehouse.sql import dml
from personas_warehouse.sql.dml import _render_displaced, displaced_users_trees
from personas_warehouse.sql.render import render, render_spliced, string_literals
from personas_warehouse.warehouses import WAREHOUSES, capabilities

SPACE = Space(traits=[ComputedTrait("plan")], audiences=[Audience("vip")])
AT = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
SPLICED = {"postgres", "duckdb", "sqlite", "clickhouse", "snowflake", "trino", "tsql", "databricks"}
"""Dialects whose rows the splice writes (the others render the real trees)."""

ids = st.one_of(
    st.sampled_from(["_pw_probe_m0", "_pw_probe_u1", "'", "\\", "a'b\\'c", "ü 😀", "x, y"]),
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1),
)


def batch_of(pairs: list[tuple[str, str]], seconds: list[int]) -> list[IdentifyEvent]:
    events = {}
    for (message_id, user_id), second in zip(pairs, seconds, strict=False):
        at = AT + dt.timedelta(seconds=second)
        events[message_id] = IdentifyEvent(message_id, user_id, at, received_at=at)
    return list(events.values())


def full(events: list[IdentifyEvent], dialect: str) -> list[str]:
    caps = capabilities(dialect)
    return [render(t, caps) for t in displaced_users_trees(SPACE, events, caps, now=AT)]


@settings(max_examples=40, deadline=None)
@given(
    pairs=st.lists(st.tuples(ids, ids), min_size=dml._SPLICE_FROM, max_size=60),
    seconds=st.lists(st.integers(0, 10**8), min_size=60, max_size=60),
    dialect=st.sampled_from(sorted(WAREHOUSES)),
)
def test_spliced_statements_equal_the_rendered_trees(
    pairs: list[tuple[str, str]], seconds: list[int], dialect: str
) -> None:
    events = batch_of(pairs, seconds)
    caps = capabilities(dialect)
    assert _render_displaced(SPACE, events, caps, AT) == full(events, dialect)


@pytest.mark.parametrize("dialect", sorted(WAREHOUSES))
def test_which_dialects_are_spliced(dialect: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path is taken where the dialect writes rows as plain tuples (the real trees
    are then never built), and the result is still the full rendering."""
    events = batch_of([(f"m{i}", f"u{i % 7}") for i in range(40)], list(range(40)))
    built: list[int] = []
    real = dml.displaced_users_trees

    def counting(space: Space, batch: Any, *args: Any, **kwargs: Any) -> Any:
        built.append(len(batch))
        return real(space, batch, *args, **kwargs)

    monkeypatch.setattr(dml, "displaced_users_trees", counting)
    statements = _render_displaced(SPACE, events, capabilities(dialect), AT)
    monkeypatch.undo()
    assert statements == full(events, dialect)
    if capabilities(dialect).upsert.value == "rebuild":
        assert statements == []
    elif dialect in SPLICED:
        assert built == [2]  # only the probe
    else:
        assert built == [2, len(events)]  # the probe, then the real trees


def test_a_marker_left_unreplaced_refuses_the_splice() -> None:
    """A probe value the markers do not cover (a list written in another form) gives None."""
    from sqlglot import exp

    literal = string_literals("postgres")
    tree = exp.select(exp.Literal.string("_pw_probe_a"), exp.Literal.string("_pw_probe_b"))
    marker = literal("_pw_probe_a")
    assert render_spliced(tree, "postgres", [(marker, "'real'")], "_pw_probe_") is None
    spliced = render_spliced(
        tree, "postgres", [(marker, "'x'"), (literal("_pw_probe_b"), "'y'")], "_pw_probe_"
    )
    assert spliced == "SELECT 'x', 'y'"
