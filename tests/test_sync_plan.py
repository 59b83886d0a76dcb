"""plan_sync by example: every rule of what a sync sends, and the errors it raises."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import personas_warehouse as pw
from personas_warehouse.errors import InvalidEventError, InvalidTimestampError
from personas_warehouse.sync import (
    ComputedResults,
    KeyCounts,
    SyncPlan,
    message_id,
    plan_sync,
    same_value,
)

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(hours=1)
CLOCK_TIME = dt.datetime(2024, 5, 1, 12, 0, 7, tzinfo=dt.UTC)


def clock() -> dt.datetime:
    return CLOCK_TIME


SPACE = pw.Space(
    traits=[
        pw.ComputedTrait("flag", pw.TraitType.BOOLEAN),
        pw.ComputedTrait("count", pw.TraitType.INTEGER),
        pw.ComputedTrait("ltv", pw.TraitType.NUMBER),
        pw.ComputedTrait("name", pw.TraitType.STRING),
        pw.ComputedTrait("seen", pw.TraitType.TIMESTAMP),
        pw.ComputedTrait("doc", pw.TraitType.JSON),
        pw.ComputedTrait("secret"),
    ],
    audiences=[pw.Audience("vip"), pw.Audience("churned"), pw.Audience("hidden")],
    excluded=["secret", "hidden"],
)


def state(user_id: str, **values: Any) -> pw.UserState:
    traits = {k: values.get(k) for k in SPACE.trait_keys}
    audiences = {k: values.get(k) for k in SPACE.audience_keys}
    return pw.UserState(user_id, traits, audiences)


def plan(
    previous: dict[str, pw.UserState],
    traits: dict[str, dict[str, Any]] | None = None,
    audiences: dict[str, set[str]] | None = None,
    at: dt.datetime = T0,
) -> SyncPlan:
    results = ComputedResults(traits=traits or {}, audiences=audiences or {})
    return plan_sync(SPACE, previous, results, at, clock=clock)


def sent(p: SyncPlan) -> dict[str, dict[str, Any]]:
    return {e.user_id: dict(e.values) for e in p.events}


# --- what is sent ---------------------------------------------------------------------------


def test_first_run_sends_every_value_and_member_but_no_none() -> None:
    p = plan(
        {},
        traits={"u1": {"ltv": 1.5, "name": "Ann", "count": None}, "u2": {"count": None}},
        audiences={"vip": {"u1", "u3"}, "churned": set()},
    )
    assert sent(p) == {"u1": {"ltv": 1.5, "name": "Ann", "vip": True}, "u3": {"vip": True}}
    assert [e.user_id for e in p.events] == ["u1", "u3"]
    assert all(e.timestamp == T0 and e.received_at == CLOCK_TIME for e in p.events)
    assert p.counts["vip"] == KeyCounts(entered=2)
    assert p.counts["ltv"] == KeyCounts(changed=1)
    assert p.counts["count"] == KeyCounts()
    assert p.totals == KeyCounts(entered=2, exited=0, changed=2)
    assert p.users_changed == 2
    assert set(p.counts) == set(SPACE.keys)


def test_later_runs_send_entries_exits_and_changed_values_only() -> None:
    previous = {
        "in": state("in", vip=True, ltv=3.0, name="x"),
        "stays": state("stays", vip=True),
        "exited": state("exited", vip=False),
        "never": state("never", churned=True),
        "back": state("back", vip=False),
    }
    p = plan(
        previous,
        traits={"in": {"ltv": 3.0, "name": "y"}, "stays": {"ltv": None}},
        audiences={"vip": {"stays", "back", "new"}},
    )
    assert sent(p) == {
        "in": {"name": "y", "vip": False},
        "back": {"vip": True},
        "new": {"vip": True},
    }
    assert p.counts["vip"] == KeyCounts(entered=2, exited=1)
    assert p.counts["name"] == KeyCounts(changed=1)
    # the audience not given (churned) is unchanged; "never" keeps churned=True
    assert "never" not in p.states
    assert p.states["in"].audiences == {"vip": False, "churned": None}
    assert p.states["in"].traits["ltv"] == 3.0
    assert p.states["in"].traits["name"] == "y"


def test_nobody_is_exited_who_was_never_in() -> None:
    previous = {"a": state("a"), "b": state("b", vip=False), "c": state("c", vip=True)}
    p = plan(previous, audiences={"vip": set()})
    assert sent(p) == {"c": {"vip": False}}


def test_explicit_clear_is_sent_for_a_held_value_only() -> None:
    previous = {"a": state("a", name="Ann"), "b": state("b")}
    p = plan(previous, traits={"a": {"name": None}, "b": {"name": None}, "c": {"name": None}})
    assert sent(p) == {"a": {"name": None}}
    assert p.states["a"].traits["name"] is None
    assert p.counts["name"] == KeyCounts(changed=1)


@pytest.mark.parametrize(
    ("key", "held", "given", "change"),
    [
        ("ltv", 1, 1.0, False),  # a NUMBER column stores a double
        ("ltv", 1.0, 1, False),
        ("ltv", 1.0, 1.5, True),
        ("count", 1, 2, True),
        ("count", 7, 7, False),
        ("flag", True, True, False),
        ("flag", True, False, True),
        ("doc", 1, 1.0, True),  # three different JSON documents
        ("doc", 1, True, True),
        ("doc", {"a": 1}, {"a": True}, True),
        ("doc", {"a": [1, 2]}, {"a": [1, 2]}, False),
        ("doc", [1.0], [1], True),
        ("name", "1", "1", False),
        ("seen", T0, T0.astimezone(dt.timezone(dt.timedelta(hours=-5))), False),
        ("seen", T0, T1, True),
    ],
)
def test_equality_knows_the_type(key: str, held: Any, given: Any, change: bool) -> None:
    p = plan({"u": state("u", **{key: held})}, traits={"u": {key: given}})
    assert (sent(p) == {"u": {key: given}}) is change
    assert p.is_empty is not change


def test_a_bool_is_never_a_number_or_an_integer() -> None:
    with pytest.raises(InvalidEventError, match=r"'u'.*ltv.*a bool is not a number"):
        plan({}, traits={"u": {"ltv": True}})
    with pytest.raises(InvalidEventError, match="count"):
        plan({}, traits={"u": {"count": False}})
    with pytest.raises(InvalidEventError, match="count"):
        plan({}, traits={"u": {"count": 1.0}})
    assert not same_value(pw.TraitType.NUMBER, 1, True)
    assert not same_value(None, True, 1)


def test_timestamps_are_normalised_to_utc() -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    p = plan({}, traits={"u": {"seen": dt.datetime(2024, 1, 1, 2, tzinfo=plus2)}})
    assert p.events[0].values["seen"] == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert p.events[0].values["seen"].utcoffset() == dt.timedelta(0)


def test_users_and_keys_not_given_are_unchanged() -> None:
    previous = {"a": state("a", name="A", vip=True), "b": state("b", name="B", churned=True)}
    p = plan(previous, traits={"a": {"ltv": 2.0}})
    assert sent(p) == {"a": {"ltv": 2.0}}
    assert p.states["a"].traits["name"] == "A"
    assert p.states["a"].audiences["vip"] is True


def test_a_key_missing_from_a_held_state_is_none() -> None:
    partial = pw.UserState("u", {"name": "x"}, {})  # e.g. read before a key was added
    p = plan({"u": partial}, traits={"u": {"name": "x", "ltv": 1.0}}, audiences={"vip": {"u"}})
    assert sent(p) == {"u": {"ltv": 1.0, "vip": True}}
    assert set(p.states["u"].traits) == set(SPACE.trait_keys)


def test_nothing_changed_is_an_empty_plan() -> None:
    previous = {"a": state("a", name="A", vip=True)}
    p = plan(previous, traits={"a": {"name": "A"}}, audiences={"vip": {"a"}})
    assert p.is_empty
    assert p.events == ()
    assert dict(p.states) == {}
    assert p.totals == KeyCounts()


# --- selective sync and errors --------------------------------------------------------------


def test_excluded_keys_are_skipped_not_written() -> None:
    p = plan({}, traits={"u": {"secret": "s", "name": "n"}}, audiences={"hidden": {"u"}})
    assert sent(p) == {"u": {"name": "n"}}
    assert p.skipped_keys == {"secret", "hidden"}
    assert "secret" not in p.counts
    assert "hidden" not in p.states["u"].audiences


def test_unknown_keys_are_errors_naming_the_key() -> None:
    with pytest.raises(InvalidEventError, match=r"unknown trait 'nope'.*add it to the Space"):
        plan({}, traits={"u": {"nope": 1}})
    with pytest.raises(InvalidEventError, match=r"unknown audience 'nope'"):
        plan({}, audiences={"nope": {"u"}})
    with pytest.raises(InvalidEventError, match=r"'vip' is an audience, not a trait"):
        plan({}, traits={"u": {"vip": True}})
    with pytest.raises(InvalidEventError, match=r"'name' is a trait, not an audience"):
        plan({}, audiences={"name": {"u"}})


def test_bad_values_are_errors_naming_user_and_key() -> None:
    with pytest.raises(pw.UnsupportedValueError, match=r"\['u9'\].*'ltv'.*NaN|\['u9'\].*nan"):
        plan({}, traits={"u9": {"ltv": float("nan")}})
    with pytest.raises(pw.UnsupportedValueError, match="NUL"):
        plan({}, traits={"u": {"name": "a\x00b"}})
    with pytest.raises(InvalidEventError, match="STRING"):
        plan({}, traits={"u": {"name": 3}})
    with pytest.raises(InvalidTimestampError, match="no time zone"):
        plan({}, traits={"u": {"seen": dt.datetime(2024, 1, 1)}})


def test_results_are_checked_when_made() -> None:
    with pytest.raises(InvalidEventError, match="set of user ids"):
        ComputedResults(audiences={"vip": "u1"})  # type: ignore[dict-item]
    with pytest.raises(InvalidEventError, match="non-empty strings"):
        ComputedResults(audiences={"vip": {"u1", 3}})  # type: ignore[arg-type]
    with pytest.raises(InvalidEventError, match="non-empty strings"):
        ComputedResults(traits={"": {"name": "x"}})
    with pytest.raises(InvalidEventError, match="map trait key"):
        ComputedResults(traits={"u": ["name"]})  # type: ignore[dict-item]
    with pytest.raises(InvalidEventError, match="ComputedResults"):
        plan_sync(SPACE, {}, {"traits": {}}, T0)  # type: ignore[arg-type]


def test_results_are_frozen_copies() -> None:
    members = {"u1"}
    values = {"name": "x"}
    results = ComputedResults(traits={"u1": values}, audiences={"vip": members})
    members.add("u2")
    values["name"] = "changed"
    assert results.audiences["vip"] == {"u1"}
    assert results.traits["u1"]["name"] == "x"


def test_naive_at_or_clock_is_an_error() -> None:
    with pytest.raises(InvalidTimestampError, match="sync time"):
        plan_sync(SPACE, {}, ComputedResults(), dt.datetime(2024, 1, 1))
    with pytest.raises(InvalidTimestampError, match="clock"):
        plan_sync(SPACE, {}, ComputedResults(), T0, clock=lambda: dt.datetime(2024, 1, 1))


def test_default_clock_is_the_wall_clock_in_utc() -> None:
    before = dt.datetime.now(dt.UTC)
    p = plan_sync(SPACE, {}, ComputedResults(audiences={"vip": {"u"}}), T0)
    after = dt.datetime.now(dt.UTC)
    assert before <= p.received_at <= after
    assert p.received_at.tzinfo is dt.UTC


# --- message ids ----------------------------------------------------------------------------


def test_message_ids_are_deterministic_and_ignore_the_clock() -> None:
    results = ComputedResults(traits={"u1": {"name": "n"}}, audiences={"vip": {"u1", "u2"}})
    first = plan_sync(SPACE, {}, results, T0, clock=clock)
    again = plan_sync(SPACE, {}, results, T0, clock=lambda: CLOCK_TIME + dt.timedelta(days=1))
    assert [e.message_id for e in first.events] == [e.message_id for e in again.events]
    assert len({e.message_id for e in first.events}) == 2
    assert first.events[0].message_id == message_id(
        SPACE.schema, "u1", T0, {"name": "n", "vip": True}
    )


def test_message_ids_differ_by_time_schema_values_and_types() -> None:
    base = message_id("s", "u", T0, {"doc": 1})
    others = {
        message_id("s", "u", T1, {"doc": 1}),
        message_id("t", "u", T0, {"doc": 1}),
        message_id("s", "v", T0, {"doc": 1}),
        message_id("s", "u", T0, {"doc": 1.0}),
        message_id("s", "u", T0, {"doc": True}),
        message_id("s", "u", T0, {"doc": "1"}),
        message_id("s", "u", T0, {"doc": [1]}),
        message_id("s", "u", T0, {"doc": None}),
        message_id("s", "u", T0, {"doc2": 1}),
    }
    assert base not in others
    assert len(others) == 9
    # the same instant in another zone is the same id; key order does not matter
    est = T0.astimezone(dt.timezone(dt.timedelta(hours=-5)))
    assert message_id("s", "u", est, {"a": 1, "b": 2}) == message_id("s", "u", T0, {"b": 2, "a": 1})


def test_a_retried_run_after_commit_plans_nothing() -> None:
    results = ComputedResults(traits={"u1": {"name": "n"}}, audiences={"vip": {"u1"}})
    first = plan_sync(SPACE, {}, results, T0, clock=clock)
    retry = plan_sync(SPACE, dict(first.states), results, T0, clock=clock)
    assert retry.is_empty


def test_a_rerun_with_different_results_gets_new_ids() -> None:
    first = plan({}, traits={"u": {"name": "a"}})
    second = plan({}, traits={"u": {"name": "b"}})
    assert first.events[0].message_id != second.events[0].message_id


def test_flip_flopping_reruns_at_one_time_never_reuse_an_id() -> None:
    """1, then 2, then 1 again at the same ``at``: the third event replaces 2, so it is not the
    first event again (which a log would drop as a duplicate, leaving 2 in force)."""
    first = plan({}, traits={"u": {"name": "a"}})
    second = plan(dict(first.states), traits={"u": {"name": "b"}})
    third = plan(dict(second.states), traits={"u": {"name": "a"}})
    ids = [p.events[0].message_id for p in (first, second, third)]
    assert len(set(ids)) == 3
    assert dict(third.events[0].values) == {"name": "a"}


def test_the_held_rows_version_goes_into_the_ids() -> None:
    """1, 2, 1, 2 at one ``at``: the fourth event replaces the same value as the second, so
    only the held row's version (the runner passes its latest received_at) tells them apart."""
    results = ComputedResults(traits={"u": {"name": "b"}})
    held = {"u": state("u", name="a")}
    second = plan_sync(SPACE, held, results, T0, versions={"u": "r1"})
    fourth = plan_sync(SPACE, held, results, T0, versions={"u": "r3"})
    again = plan_sync(SPACE, held, results, T0, versions={"u": "r1"})
    assert second.events[0].message_id != fourth.events[0].message_id
    assert second.events[0].message_id == again.events[0].message_id
    assert plan_sync(SPACE, held, results, T0).events[0].message_id not in {
        second.events[0].message_id,
        fourth.events[0].message_id,
    }
