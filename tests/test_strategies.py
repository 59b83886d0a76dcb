"""The shipped hypothesis strategies: always valid, and able to produce every awkward case."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from personas_warehouse.model import (
    Audience,
    IdentifyEvent,
    Space,
    TraitType,
    portable_stem,
    validate_trait_value,
)
from personas_warehouse.strategies import (
    AWKWARD_KEYS,
    _portable,
    aware_datetimes,
    event_logs,
    identify_events,
    keys,
    spaces,
    trait_values,
)

FIND = settings(max_examples=2_000, database=None, phases=[Phase.generate])
"""Search, without shrinking what is found (only its existence matters)."""


@given(spaces(min_keys=2, max_keys=5))
def test_spaces_are_valid_and_sized(space: Space) -> None:
    assert 2 <= len(space.keys) <= 5
    stems = [portable_stem(k) for k in space.keys if portable_stem(k)]
    assert len(stems) == len(set(stems))
    assert Space(traits=space.traits, audiences=space.audiences) == space


def test_spaces_refuse_bad_bounds() -> None:
    with pytest.raises(ValueError, match="min_keys"):
        find(spaces(min_keys=0), lambda _: True, settings=FIND)


@pytest.mark.parametrize(
    "wanted",
    [
        lambda k: k in {"id", "timestamp", "select"},
        lambda k: " " in k,
        lambda k: "'" in k or '"' in k,
        lambda k: not k.isascii(),
        lambda k: k[:1].isdigit(),
        lambda k: len(k) > 255,
    ],
)
def test_keys_include_awkward_ones(wanted: Callable[[str], bool]) -> None:
    assert wanted(find(keys(), wanted, settings=FIND))


def test_every_trait_type_shows_up_in_spaces() -> None:
    for kind in TraitType:
        space = find(spaces(), lambda s, k=kind: k in s.trait_types.values(), settings=FIND)
        assert kind in space.trait_types.values()


@pytest.mark.parametrize("kind", list(TraitType))
@given(data=st.data())
def test_trait_values_fit_their_type(kind: TraitType, data: st.DataObject) -> None:
    value = data.draw(trait_values(kind))
    assert value is not None
    validate_trait_value("key", kind, value)  # raises when the value does not fit


@given(aware_datetimes())
def test_aware_datetimes_are_aware_and_close_together(ts: dt.datetime) -> None:
    assert ts.utcoffset() is not None
    start = dt.datetime(2024, 3, 10, 12, tzinfo=dt.UTC)
    assert start <= ts <= start + dt.timedelta(seconds=13)


def test_aware_datetimes_use_several_offsets() -> None:
    offsets = {
        find(
            aware_datetimes(),
            lambda ts, h=h: ts.utcoffset() == dt.timedelta(hours=h),
            settings=FIND,
        ).utcoffset()
        for h in (0, 2, 14)
    }
    assert len(offsets) == 3


@given(data=st.data())
def test_events_are_valid_for_their_space(data: st.DataObject) -> None:
    space = data.draw(spaces())
    event = data.draw(identify_events(space))
    space.validate_event(event)  # raises if invalid
    events = data.draw(event_logs(space, max_size=8))
    assert isinstance(events, list)
    for event in events:
        assert isinstance(event, IdentifyEvent)
        space.validate_event(event)


def _features(events: list[IdentifyEvent], space: Space) -> set[str]:
    found = set()
    by_id: dict[str, list[IdentifyEvent]] = {}
    for event in events:
        by_id.setdefault(event.message_id, []).append(event)
        if event.received_at > event.timestamp:
            found.add("late arrival")
        if any(v is None for v in event.values.values()):
            found.add("explicit clear")
    for copies in by_id.values():
        if len(copies) > 1:
            same = all(c == copies[0] for c in copies)
            found.add("identical copies" if same else "differing copies")
    seen: set[tuple[str, dt.datetime]] = set()
    for event in events:
        key = (event.user_id, event.timestamp)
        if key in seen:
            found.add("timestamp tie")
        seen.add(key)
    for audience in space.audience_keys:
        for user in {e.user_id for e in events}:
            mine = sorted(
                (e for e in events if e.user_id == user and audience in e.values),
                key=lambda e: (e.timestamp, e.received_at, e.message_id),
            )
            if mine and mine[0].values[audience] is False:
                found.add("exit without entry")
    return found


@pytest.mark.parametrize(
    "feature",
    [
        "late arrival",
        "explicit clear",
        "identical copies",
        "differing copies",
        "timestamp tie",
        "exit without entry",
    ],
)
def test_event_logs_produce_every_awkward_case(feature: str) -> None:
    def has_it(case: Any) -> bool:
        space, events = case
        return feature in _features(events, space)

    strategy = spaces().flatmap(lambda space: st.tuples(st.just(space), event_logs(space)))
    space, events = find(strategy, has_it, settings=FIND)
    assert feature in _features(events, space)


def test_awkward_keys_make_valid_spaces_together() -> None:
    kept = _portable(list(AWKWARD_KEYS))
    space = Space(audiences=[Audience(k) for k in kept])
    assert set(space.audience_keys) == set(kept)
    assert _portable(["orderID", "order id", "order_id", "other"]) == ["orderID", "other"]
