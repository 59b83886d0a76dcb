"""Property tests: the indexed IdentifiesLog equals the plain reference fold (tests/reference.py)
on generated logs full of ties, duplicates, late arrivals, clears and exits without entry."""

from __future__ import annotations

import datetime as dt
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import as_columns, counted, dedupe, reference_snapshot, reference_state

from personas_warehouse import log as log_module
from personas_warehouse.log import IdentifiesLog
from personas_warehouse.model import (
    Audience,
    ComputedTrait,
    IdentifyEvent,
    Space,
    TraitType,
)
from personas_warehouse.strategies import (
    DEFAULT_USER_IDS,
    aware_datetimes,
    event_logs,
    spaces,
)

USERS = [*DEFAULT_USER_IDS, "never-seen"]
times = aware_datetimes()
maybe_times = st.one_of(st.none(), aware_datetimes())


@st.composite
def space_and_log(draw: st.DrawFn, max_size: int = 20) -> tuple[Space, list[IdentifyEvent]]:
    space = draw(spaces())
    return space, draw(event_logs(space, max_size=max_size))


def build(space: Space, events: Sequence[IdentifyEvent], cuts: Iterable[int] = ()) -> IdentifiesLog:
    """A log fed in batches split at ``cuts``, read between batches (the incremental path)."""
    log = IdentifiesLog(space)
    start = 0
    for cut in [*sorted(set(cuts)), len(events)]:
        log.extend(events[start:cut])
        len(log)  # index now
        start = max(start, cut)
    return log


def same(old: Any, new: Any) -> bool:
    return old is new or (type(old) is type(new) and old == new)


def reference_history(
    space: Space, events: list[IdentifyEvent], user: str
) -> list[tuple[Any, ...]]:
    state: dict[str, Any] = dict.fromkeys(space.keys)
    changes = []
    for event in counted(events, None, None):
        if event.user_id != user:
            continue
        for key in space.keys:
            if key in event.values and not same(state[key], event.values[key]):
                changes.append(
                    (
                        event.timestamp,
                        event.received_at,
                        event.message_id,
                        key,
                        state[key],
                        event.values[key],
                    )
                )
                state[key] = event.values[key]
    return changes


def reference_intervals(
    events: list[IdentifyEvent], audience: str
) -> list[tuple[str, dt.datetime, dt.datetime | None]]:
    intervals = []
    for user in sorted({e.user_id for e in dedupe(events)}):
        opened = None
        for event in counted(events, None, None):
            if event.user_id != user or audience not in event.values:
                continue
            if event.values[audience] is True and opened is None:
                opened = event.timestamp
            elif event.values[audience] is False and opened is not None:
                intervals.append((user, opened, event.timestamp))
                opened = None
        if opened is not None:
            intervals.append((user, opened, None))
    return intervals


def ambiguous_duplicates(events: list[IdentifyEvent]) -> bool:
    """Copies of a message id that tie on the whole dedupe rank yet differ: the first added
    wins, so only for these does the order of adding matter (see docs/reconstruction.md)."""
    best: dict[str, tuple[Any, ...]] = {}
    winners: dict[str, set[tuple[Any, ...]]] = {}
    for event in events:
        rank = (event.received_at, event.timestamp, event.user_id)
        content = tuple(sorted((k, repr(v)) for k, v in event.values.items()))
        if event.message_id not in best or rank < best[event.message_id]:
            best[event.message_id] = rank
            winners[event.message_id] = {content}
        elif rank == best[event.message_id]:
            winners[event.message_id].add(content)
    return any(len(w) > 1 for w in winners.values())


@given(data=st.data(), case=space_and_log())
def test_state_equals_the_reference(data: st.DataObject, case: Any) -> None:
    space, events = case
    cuts = data.draw(st.lists(st.integers(0, len(events)), max_size=3))
    log = build(space, events, cuts)
    for _ in range(4):
        user = data.draw(st.sampled_from(USERS))
        ts = data.draw(times)
        known_at = data.draw(maybe_times)
        assert log.reconstruct_state(user, ts, known_at=known_at) == reference_state(
            space, events, user, ts, known_at
        )


@given(data=st.data(), case=space_and_log())
def test_snapshot_equals_the_reference(data: st.DataObject, case: Any) -> None:
    space, events = case
    log = build(space, events, data.draw(st.lists(st.integers(0, len(events)), max_size=2)))
    ts = data.draw(times)
    known_at = data.draw(maybe_times)
    snap = log.snapshot(ts, known_at=known_at)
    assert snap == reference_snapshot(space, events, ts, known_at)
    for user, state in snap.items():
        assert state == log.reconstruct_state(user, ts, known_at=known_at)


@given(data=st.data(), case=space_and_log())
def test_result_does_not_depend_on_the_order_events_were_added(
    data: st.DataObject, case: Any
) -> None:
    space, events = case
    if ambiguous_duplicates(events):
        events = list({e.message_id: e for e in events}.values())  # one copy per id
    shuffled = data.draw(st.permutations(events))
    cuts = data.draw(st.lists(st.integers(0, len(events)), max_size=3))
    first, second = build(space, events), build(space, shuffled, cuts)
    ts = data.draw(times)
    known_at = data.draw(maybe_times)
    assert first.snapshot(ts, known_at=known_at) == second.snapshot(ts, known_at=known_at)
    assert len(first) == len(second) == len({e.message_id for e in events})
    assert first.users() == second.users()
    for user in first.users():
        assert first.history(user) == second.history(user)


@given(case=space_and_log())
def test_events_are_the_deduplicated_events(case: Any) -> None:
    space, events = case
    log = IdentifiesLog(space, events)
    expected = counted(events, None, None)
    got = list(log.events())
    assert [(e.message_id, e.user_id, e.timestamp, e.received_at) for e in got] == [
        (e.message_id, e.user_id, e.timestamp, e.received_at) for e in expected
    ]
    assert [dict(e.values) for e in got] == [dict(e.values) for e in expected]
    assert log.users() == sorted({e.user_id for e in expected})


@given(case=space_and_log())
def test_history_equals_the_reference_fold(case: Any) -> None:
    space, events = case
    log = IdentifiesLog(space, events)
    for user in USERS:
        got = [
            (c.timestamp, c.received_at, c.message_id, c.key, c.old, c.new)
            for c in log.history(user)
        ]
        assert got == reference_history(space, events, user)
        assert all(c.user_id == user for c in log.history(user))


@given(data=st.data(), case=space_and_log())
def test_audience_views_equal_the_reference(data: st.DataObject, case: Any) -> None:
    space, events = case
    if not space.audience_keys:
        return
    log = build(space, events, data.draw(st.lists(st.integers(0, len(events)), max_size=2)))
    audience = data.draw(st.sampled_from(space.audience_keys))
    intervals = log.membership_intervals(audience)
    assert [(i.user_id, i.entered_at, i.exited_at) for i in intervals] == reference_intervals(
        events, audience
    )
    moments = data.draw(st.lists(times, max_size=4))
    known_at = data.draw(maybe_times)
    expected_sizes = []
    for ts in moments:
        members = {
            user
            for user, state in reference_snapshot(space, events, ts, known_at).items()
            if state.audiences[audience] is True
        }
        assert log.members(audience, ts, known_at=known_at) == members
        if known_at is None:
            assert members == {i.user_id for i in intervals if i.contains(ts)}
        expected_sizes.append((ts, len(members)))
    assert log.audience_size(audience, moments, known_at=known_at) == expected_sizes


@pytest.mark.soak
@settings(max_examples=5_000)
@given(data=st.data(), case=space_and_log(max_size=60))
def test_state_equals_the_reference_soak(data: st.DataObject, case: Any) -> None:
    space, events = case
    log = build(space, events, data.draw(st.lists(st.integers(0, len(events)), max_size=5)))
    ts = data.draw(times)
    known_at = data.draw(maybe_times)
    assert log.snapshot(ts, known_at=known_at) == reference_snapshot(space, events, ts, known_at)


@settings(max_examples=300)
@given(case=space_and_log(max_size=40))
def test_numpy_layout_equals_the_pure_python_layout(case: Any) -> None:
    """The bulk index built with numpy (the ``fast`` extra) is the pure-Python one, array for
    array; the other properties here run on whichever is in use, so both equal the reference."""
    pytest.importorskip("numpy")
    space, events = case
    keys = log_module._Keys(space)
    chunk = keys.columns(events)
    mids, uids, ts, recv, pair_start, pair_count = log_module._drop_copies(chunk)
    arguments = {
        "mids": mids,
        "uids": uids,
        "ts": ts,
        "recv": recv,
        "pair_start": pair_start,
        "pair_count": pair_count,
        "codes_all": chunk.code,
        "values_all": chunk.value,
        "keys": keys,
    }
    fast = log_module._layout_numpy(**arguments)
    plain = log_module._layout_python(**arguments)
    for field in attrs.fields(type(plain)):
        expected, got = getattr(plain, field.name), getattr(fast, field.name)
        assert type(got) is type(expected), field.name
        assert got == expected, field.name
        if isinstance(expected, array):
            assert got.typecode == expected.typecode, field.name
    assert all(map(same, fast.t_value, plain.t_value))


def test_pure_python_index_without_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """With numpy absent the log indexes in pure Python and answers the same."""
    space = Space(audiences=[Audience("vip")], traits=[ComputedTrait("n", TraitType.INTEGER)])
    at = [dt.datetime(2024, 1, 1, h, tzinfo=dt.UTC) for h in range(4)]
    events = [
        IdentifyEvent("b", "u1", at[1], {"vip": True}),
        IdentifyEvent("a", "u1", at[1], {"vip": False, "n": 2}),  # tie: message id "a" first
        IdentifyEvent("c", "u2", at[0], {"n": 5}, received_at=at[3]),
        IdentifyEvent("b", "u1", at[1], {"vip": True}, received_at=at[2]),  # a later copy
    ]
    fast = IdentifiesLog(space, events)
    monkeypatch.setattr(log_module, "_accelerated", lambda: False)
    monkeypatch.setattr(log_module, "_SPEEDUPS", None)  # the C speedups, where built: off too
    plain = IdentifiesLog(space, events)
    assert len(plain) == len(fast) == 3
    assert plain.snapshot(at[3]) == fast.snapshot(at[3]) == reference_snapshot(space, events, at[3])
    assert plain.reconstruct_state("u1", at[1]).audiences == {"vip": True}


@given(mids=st.lists(st.sampled_from(["a", "b", "c", "d", "é", "", "a\\x00"]), max_size=30))
def test_numpy_copies_equal_the_pure_python_copies(mids: list[str]) -> None:
    pytest.importorskip("numpy")
    expected = log_module._repeated_python(mids)
    assert log_module._repeated_numpy(mids) == expected
    # every id hashing alike: the collisions are told apart by their text
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(log_module, "hash", lambda _: 7, raising=False)
        assert log_module._repeated_numpy(mids) == expected


@given(uids=st.lists(st.sampled_from(["u1", "u2", "u3", "é", "", "u1 "]), max_size=30))
def test_numpy_user_numbers_equal_first_appearance(uids: list[str]) -> None:
    pytest.importorskip("numpy")
    expected = list(dict.fromkeys(uids))
    numbers = [expected.index(u) for u in uids]
    u_ids, codes = log_module._number_users_numpy(uids)
    assert (u_ids, codes.tolist()) == (expected, numbers)
    # ids sharing a hash are still told apart
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(log_module, "hash", lambda u: len(u) % 2, raising=False)
        u_ids, codes = log_module._number_users_numpy(uids)
        assert (u_ids, codes.tolist()) == (expected, numbers)


# --- IdentifiesLog.from_columns -----------------------------------------------------------------


def canonical_events(log: IdentifiesLog) -> list[tuple[Any, ...]]:
    return [
        (e.message_id, e.user_id, e.timestamp, e.received_at, sorted(e.values.items(), key=str))
        for e in log.events()
    ]


@settings(max_examples=150, deadline=None)
@given(
    data=space_and_log(max_size=30),
    moment=maybe_times,
    path=st.sampled_from(["compiled", "numpy", "python"]),
)
def test_from_columns_is_the_log_of_the_same_events(
    data: tuple[Space, list[IdentifyEvent]], moment: dt.datetime | None, path: str
) -> None:
    """With the C speedups (where built), with numpy (a stable argsort puts the pairs in event
    order) and in pure Python (a counting pass): the log of the same events."""
    space, events = data
    real, compiled = log_module._accelerated, log_module._SPEEDUPS
    log_module._accelerated = lambda: path != "python" and real()  # type: ignore[assignment]
    if path != "compiled":
        log_module._SPEEDUPS = None
    try:
        built = IdentifiesLog.from_columns(space, **as_columns(space, events))
        len(built)
    finally:
        log_module._accelerated = real  # type: ignore[assignment]
        log_module._SPEEDUPS = compiled
    expected = IdentifiesLog(space, events)
    assert len(built) == len(expected)
    assert canonical_events(built) == canonical_events(expected)
    if moment is not None:
        assert built.snapshot(moment) == expected.snapshot(moment)
        for user in USERS:
            assert built.reconstruct_state(user, moment) == expected.reconstruct_state(user, moment)


def test_from_columns_takes_the_bulk_path_for_plain_values() -> None:
    """Plain values never make event objects (the path loaders use)."""
    space = Space(traits=[ComputedTrait("n", TraitType.INTEGER)], audiences=[Audience("vip")])
    at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    made: list[Any] = []
    real = log_module._events_of_columns
    try:
        log_module._events_of_columns = lambda given: made.append(given) or real(given)  # type: ignore[assignment]
        log = IdentifiesLog.from_columns(
            space,
            message_id=["a", "b", "c"],
            user_id=["u", "u", "w"],
            timestamp=[at, at + dt.timedelta(1), at],
            values={"n": [1, None, 3], "vip": [None, True, False]},
            cleared=[None, ["n"], None],
        )
    finally:
        log_module._events_of_columns = real  # type: ignore[assignment]
    assert made == []
    assert log.reconstruct_state("u", at + dt.timedelta(2)).traits == {"n": None}
    assert log.reconstruct_state("u", at + dt.timedelta(2)).audiences == {"vip": True}
    assert log.reconstruct_state("w", at).traits == {"n": 3}
    # the keys an event clears may be any iterable, read once
    again = IdentifiesLog.from_columns(
        space,
        message_id=["a"],
        user_id=["u"],
        timestamp=[at],
        values={"n": [1]},
        cleared=[(key for key in ["n"])],
    )
    assert again.reconstruct_state("u", at).traits == {"n": None}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"user_id": ["u"]}, "as long as message_id"),
        ({"values": {"nope": [1, 2]}}, "nope"),
        ({"values": {"n": ["x", 2]}}, "'n'"),
        ({"timestamp": [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1)]}, "time zone"),
        ({"message_id": ["a", ""]}, "non-empty"),
        ({"cleared": ["n", None]}, "must list keys"),
    ],
)
def test_from_columns_reports_bad_cells(change: dict[str, Any], error: str) -> None:
    space = Space(traits=[ComputedTrait("n", TraitType.INTEGER)], audiences=[Audience("vip")])
    at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    columns: dict[str, Any] = {
        "message_id": ["a", "b"],
        "user_id": ["u", "w"],
        "timestamp": [at, at],
        "values": {"n": [1, None]},
        **change,
    }
    with pytest.raises(ValueError, match=error):
        IdentifiesLog.from_columns(space, **columns)
