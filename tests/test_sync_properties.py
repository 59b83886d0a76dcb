"""plan_sync against a plain reference: applying the plan gives exactly the computed results.

The previous state is turned into one "base" event per user, the plan's events follow it, and the
reference fold (tests/reference.py) and the fast IdentifiesLog both rebuild the result. Values
are drawn from small pools as well as at large, so ``1`` / ``1.0`` / ``True`` meet often.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from reference import fold

import personas_warehouse as pw
from personas_warehouse.log import IdentifiesLog
from personas_warehouse.sync import ComputedResults, SyncPlan, plan_sync, same_value

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
BASE_TIME = T0 - dt.timedelta(days=1)

SPACE = pw.Space(
    traits=[
        pw.ComputedTrait("flag", pw.TraitType.BOOLEAN),
        pw.ComputedTrait("count", pw.TraitType.INTEGER),
        pw.ComputedTrait("ltv", pw.TraitType.NUMBER),
        pw.ComputedTrait("name", pw.TraitType.STRING),
        pw.ComputedTrait("seen", pw.TraitType.TIMESTAMP),
        pw.ComputedTrait("doc", pw.TraitType.JSON),
    ],
    audiences=[pw.Audience("vip"), pw.Audience("churned"), pw.Audience("new")],
)
TYPES = dict(SPACE.trait_types)
USERS = st.sampled_from([f"u{i}" for i in range(8)])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from([1.0, 0.5, -0.0])
    | st.text(st.characters(blacklist_characters="\x00"), max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(st.characters(blacklist_characters="\x00"), max_size=2), inner, max_size=3
        )
    ),
    max_leaves=6,
)
zones = st.sampled_from(
    [dt.UTC, dt.timezone(dt.timedelta(hours=2)), dt.timezone(dt.timedelta(hours=-7))]
)
VALUES: dict[pw.TraitType, st.SearchStrategy[Any]] = {
    pw.TraitType.BOOLEAN: st.booleans(),
    pw.TraitType.INTEGER: st.sampled_from([0, 1, -1]) | st.integers(-(2**63), 2**63 - 1),
    pw.TraitType.NUMBER: st.sampled_from([0, 1, 1.0, 0.0, -0.0, 2.5])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-(2**53), 2**53),
    pw.TraitType.STRING: st.sampled_from(["", "1", "a"])
    | st.text().filter(lambda s: "\x00" not in s),
    pw.TraitType.TIMESTAMP: st.builds(
        lambda minutes, zone: (T0 + dt.timedelta(minutes=minutes)).astimezone(zone),
        st.integers(0, 3),
        zones,
    ),
    pw.TraitType.JSON: st.sampled_from([1, 1.0, True, [1], [True], {"a": 1}, {"a": True}, "1"])
    | json_values,
}


@st.composite
def trait_values(draw: st.DrawFn, *, allow_none: bool = True) -> dict[str, Any]:
    keys = draw(st.sets(st.sampled_from(SPACE.trait_keys)))
    values = {}
    for key in sorted(keys):
        strategy = VALUES[TYPES[key]]
        values[key] = draw(st.none() | strategy) if allow_none else draw(strategy)
    return values


@st.composite
def previous_states(draw: st.DrawFn) -> dict[str, pw.UserState]:
    states = {}
    for user_id in draw(st.sets(USERS)):
        traits = dict.fromkeys(SPACE.trait_keys)
        traits.update(draw(trait_values()))
        audiences = {k: draw(st.sampled_from([True, False, None])) for k in SPACE.audience_keys}
        states[user_id] = pw.UserState(user_id, traits, audiences)
    return states


computed_results = st.builds(
    ComputedResults,
    traits=st.dictionaries(USERS, trait_values()),
    audiences=st.dictionaries(st.sampled_from(SPACE.audience_keys), st.sets(USERS)),
)


def base_events(previous: dict[str, pw.UserState]) -> list[pw.IdentifyEvent]:
    """One event per held user carrying every non-None value: folding it gives the state."""
    events = []
    for user_id, state in previous.items():
        values = {k: v for k, v in {**state.traits, **state.audiences}.items() if v is not None}
        events.append(pw.IdentifyEvent(f"base-{user_id}", user_id, BASE_TIME, values))
    return events


def expected_state(
    previous: dict[str, pw.UserState], computed: ComputedResults, user_id: str
) -> pw.UserState:
    """The plain statement of what a sync means, key by key."""
    held = previous.get(user_id) or pw.UserState.empty(SPACE, user_id)
    traits = dict(held.traits)
    traits.update(computed.traits.get(user_id, {}))
    audiences = dict(held.audiences)
    for key, members in computed.audiences.items():
        if user_id in members:
            audiences[key] = True
        elif held.audiences[key] is True:
            audiences[key] = False
    return pw.UserState(user_id, traits, audiences)


def same_state(a: pw.UserState, b: pw.UserState) -> bool:
    return all(same_value(TYPES[k], a.traits[k], b.traits[k]) for k in SPACE.trait_keys) and all(
        a.audiences[k] is b.audiences[k] for k in SPACE.audience_keys
    )


def apply(previous: dict[str, pw.UserState], plan: SyncPlan) -> dict[str, pw.UserState]:
    return {**previous, **plan.states}


@settings(max_examples=150, deadline=None)
@given(previous=previous_states(), computed=computed_results)
def test_applying_the_plan_gives_the_computed_results(
    previous: dict[str, pw.UserState], computed: ComputedResults
) -> None:
    plan = plan_sync(SPACE, previous, computed, T0, clock=lambda: T0)
    events = base_events(previous) + list(plan.events)
    users = set(previous) | set(computed.traits) | set().union(*computed.audiences.values())
    log = IdentifiesLog(SPACE, events)
    for user_id in users:
        mine = sorted(
            (e for e in events if e.user_id == user_id), key=lambda e: (e.timestamp, e.message_id)
        )
        expected = expected_state(previous, computed, user_id)
        folded = fold(SPACE, user_id, mine)
        assert same_state(folded, expected), (user_id, folded, expected)
        assert same_state(log.reconstruct_state(user_id, T0), expected)
        if user_id in plan.states:
            assert same_state(plan.states[user_id], expected)
            assert plan.states[user_id] == folded  # the plan's own states, value for value
        else:
            assert user_id not in {e.user_id for e in plan.events}


@settings(max_examples=150, deadline=None)
@given(previous=previous_states(), computed=computed_results)
def test_only_changes_are_sent_and_counted(
    previous: dict[str, pw.UserState], computed: ComputedResults
) -> None:
    plan = plan_sync(SPACE, previous, computed, T0, clock=lambda: T0)
    entered = dict.fromkeys(SPACE.keys, 0)
    exited = dict.fromkeys(SPACE.keys, 0)
    changed = dict.fromkeys(SPACE.keys, 0)
    assert len({e.user_id for e in plan.events}) == len(plan.events)
    assert len({e.message_id for e in plan.events}) == len(plan.events)
    for event in plan.events:
        assert event.values, "an event with nothing in it is not a change"
        assert event.timestamp == T0
        held = previous.get(event.user_id) or pw.UserState.empty(SPACE, event.user_id)
        for key, value in event.values.items():
            if key in SPACE.audience_keys:
                if value is False:
                    assert held.audiences[key] is True, "exited a user who was not in"
                    exited[key] += 1
                else:
                    assert value is True
                    assert held.audiences[key] is not True
                    entered[key] += 1
            else:
                assert not same_value(TYPES[key], held.traits[key], value)
                changed[key] += 1
    for key in SPACE.keys:
        assert plan.counts[key].as_dict() == {
            "entered": entered[key],
            "exited": exited[key],
            "changed": changed[key],
        }


@settings(max_examples=120, deadline=None)
@given(previous=previous_states(), computed=computed_results, later=st.integers(0, 2))
def test_planning_again_on_the_result_is_empty_and_ids_are_deterministic(
    previous: dict[str, pw.UserState], computed: ComputedResults, later: int
) -> None:
    plan = plan_sync(SPACE, previous, computed, T0, clock=lambda: T0)
    again = plan_sync(SPACE, previous, computed, T0, clock=lambda: T0 + dt.timedelta(hours=5))
    assert [e.message_id for e in plan.events] == [e.message_id for e in again.events]
    assert [dict(e.values) for e in plan.events] == [dict(e.values) for e in again.events]
    at = T0 + dt.timedelta(hours=later)
    assert plan_sync(SPACE, apply(previous, plan), computed, at).is_empty


@settings(max_examples=60, deadline=None)
@given(computed=computed_results)
def test_first_run_sends_every_non_none_value_and_member(computed: ComputedResults) -> None:
    plan = plan_sync(SPACE, {}, computed, T0, clock=lambda: T0)
    expected: dict[str, dict[str, Any]] = {}
    for user_id, values in computed.traits.items():
        for key, value in values.items():
            if value is not None:
                expected.setdefault(user_id, {})[key] = value
    for key, members in computed.audiences.items():
        for user_id in members:
            expected.setdefault(user_id, {})[key] = True
    got = {e.user_id: dict(e.values) for e in plan.events}
    assert got.keys() == expected.keys()
    for user_id, values in expected.items():
        assert got[user_id].keys() == values.keys()
        for key, value in values.items():
            assert same_value(TYPES.get(key), got[user_id][key], value)
