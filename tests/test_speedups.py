"""The optional C speedups (personas_warehouse/_speedups.c) equal the Python code they replace.

``flatten`` is held to ``_Keys.columns`` and ``layout`` to ``_drop_copies`` + ``_layout_python``
+ the message-id buffer, column for column, on generated logs; every case the C code declines
(returns None for) is shown to reach the Python code, which raises or normalises as before.
The other log tests run on whichever path is in use, so with the speedups built they hold the
compiled path to the reference fold too. ``PW_TEST_REQUIRE_SPEEDUPS=1`` (set by ``.ci/run``)
makes a missing build a failure rather than a skip.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from array import array
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import as_columns, reference_snapshot

from personas_warehouse import log as log_module
from personas_warehouse.errors import InvalidEventError
from personas_warehouse.log import IdentifiesLog
from personas_warehouse.model import (
    Audience,
    ComputedTrait,
    IdentifyEvent,
    Space,
    TraitType,
)
from personas_warehouse.strategies import aware_datetimes, event_logs, spaces

REQUIRED = os.environ.get("PW_TEST_REQUIRE_SPEEDUPS", "") == "1"


def _speedups() -> Any:
    try:
        from personas_warehouse import _speedups
    except ImportError as error:
        if REQUIRED:
            pytest.fail(f"PW_TEST_REQUIRE_SPEEDUPS=1 but the C speedups are not built: {error}")
        pytest.skip("the C speedups are not built here (no C compiler at install)")
    return _speedups


@pytest.fixture
def compiled() -> Any:
    return _speedups()


@pytest.fixture
def python_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The log with the speedups turned off (what runs where they are not built)."""
    monkeypatch.setattr(log_module, "_SPEEDUPS", None)


def test_speedups_in_use_when_built(compiled: Any) -> None:
    assert log_module._SPEEDUPS is compiled


def _without_speedups(function: Any, *args: Any, **kwargs: Any) -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(log_module, "_SPEEDUPS", None)
        return function(*args, **kwargs)


def same(old: Any, new: Any) -> bool:
    return old is new or (type(old) is type(new) and old == new)


def assert_same_columns(got: dict[str, Any], expected: dict[str, Any], *skip: str) -> None:
    """Two logs' columns (slot -> value) equal, trait values of the same types too."""
    for name, value in expected.items():
        if name in {"_keys", "_pending", *skip}:
            continue
        assert type(got[name]) is type(value), name
        assert got[name] == value, name
        if isinstance(value, array):
            assert got[name].typecode == value.typecode, name
    if "_t_value" not in skip:
        assert all(map(same, got["_t_value"], expected["_t_value"]))


def assert_same_chunk(got: Any, expected: Any) -> None:
    for field in attrs.fields(type(expected)):
        assert list(getattr(got, field.name)) == list(getattr(expected, field.name)), field.name
    assert all(map(same, got.value, expected.value))


@st.composite
def space_and_log(draw: st.DrawFn, max_size: int = 40) -> tuple[Space, list[IdentifyEvent]]:
    space = draw(spaces())
    return space, draw(event_logs(space, max_size=max_size))


@settings(max_examples=300)
@given(case=space_and_log())
def test_flatten_equals_the_python_columns(case: Any) -> None:
    compiled = _speedups()
    space, events = case
    keys = log_module._Keys(space)
    expected = _without_speedups(keys.columns, events)
    flat = compiled.flatten(
        events, IdentifyEvent, log_module._EVENT_SLOTS, keys.code, keys.compiled_checks
    )
    if flat is None:  # declined: the values need the Python check (JSON, other zones ...)
        assert keys.columns(events) is not None
        return
    assert_same_chunk(keys.columns(events), expected)


def fresh_layout(space: Space, events: list[IdentifyEvent]) -> dict[str, Any]:
    """Every column of a freshly built log (the hash table is built later, by adds)."""
    log = IdentifiesLog(space, events)
    len(log)
    return {name: getattr(log, name) for name in IdentifiesLog.__slots__}


@settings(max_examples=300)
@given(case=space_and_log())
def test_layout_equals_the_python_layout(case: Any) -> None:
    """The compiled first index is the Python one, array for array (typecodes included)."""
    _speedups()
    space, events = case
    assert_same_columns(fresh_layout(space, events), _without_speedups(fresh_layout, space, events))


def at(minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(2024, 1, 1, 12, minute, second, tzinfo=dt.UTC)


SPACE = Space(
    traits=[
        ComputedTrait("n", TraitType.INTEGER),
        ComputedTrait("x", TraitType.NUMBER),
        ComputedTrait("s", TraitType.STRING),
        ComputedTrait("t", TraitType.TIMESTAMP),
        ComputedTrait("j", TraitType.JSON),
    ],
    audiences=[Audience("vip"), Audience("churn")],
)


def both_ways(events: list[IdentifyEvent]) -> tuple[IdentifiesLog, IdentifiesLog]:
    fast = IdentifiesLog(SPACE, events)
    len(fast)
    plain = _without_speedups(lambda: IdentifiesLog(SPACE, events))
    _without_speedups(len, plain)
    return fast, plain


@pytest.mark.parametrize(
    "values",
    [
        {"x": float("nan")},  # not finite: the Python check raises
        {"x": 2**53 + 1},  # an int a NUMBER cannot hold exactly
        {"n": 2**63},  # over int64
        {"s": "a\x00b"},  # NUL
        {"vip": None},  # an audience is True or False
        {"n": True},  # a bool is not an INTEGER
        {"unknown": 1},
    ],
    ids=["nan", "int53", "int64", "nul", "audience-none", "bool-int", "unknown-key"],
)
def test_values_the_c_code_declines_raise_as_before(values: dict[str, Any]) -> None:
    """The compiled flatten vouches for nothing it cannot check: these reach the Python
    check, which raises the same error with the speedups on and off."""
    keys = log_module._Keys(SPACE)
    events = [IdentifyEvent("m0", "u", at(0), {"n": 1}), IdentifyEvent("m1", "u", at(1), values)]
    compiled = log_module._SPEEDUPS
    if compiled is not None:
        flat = compiled.flatten(
            events, IdentifyEvent, log_module._EVENT_SLOTS, keys.code, keys.compiled_checks
        )
        assert flat is None
    with pytest.raises(InvalidEventError) as fast:
        IdentifiesLog(SPACE, events)
    with pytest.raises(InvalidEventError) as plain:
        _without_speedups(IdentifiesLog, SPACE, events)
    assert str(fast.value) == str(plain.value)


def test_values_normalised_by_python_are_kept(compiled: Any) -> None:
    """JSON values, datetimes in other zones and int subclasses take the Python path, which
    normalises them; the log is the same with the speedups on and off."""

    class Count(int):
        pass

    paris = dt.timezone(dt.timedelta(hours=1))
    events = [
        IdentifyEvent("m0", "u", at(0), {"j": {"a": [1, 2]}}),
        IdentifyEvent("m1", "u", at(1), {"t": dt.datetime(2024, 1, 1, 13, tzinfo=paris)}),
        IdentifyEvent("m2", "u", at(2), {"n": Count(3)}),
        IdentifyEvent("m3", "u", at(3), {"t": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)}),
    ]
    keys = log_module._Keys(SPACE)
    for event in events[:3]:
        assert (
            compiled.flatten(
                [event], IdentifyEvent, log_module._EVENT_SLOTS, keys.code, keys.compiled_checks
            )
            is None
        )
    fast, plain = both_ways(events)
    assert list(fast.events()) == list(plain.events())
    assert fast.reconstruct_state("u", at(9)) == plain.reconstruct_state("u", at(9))


def test_timestamps_over_the_whole_datetime_range(compiled: Any) -> None:
    """Epoch microseconds from the date fields equal the Python subtraction, from year 1 to
    9999, before the epoch and on leap days."""
    moments = [
        dt.datetime(1, 1, 1, tzinfo=dt.UTC),
        dt.datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC),
        dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2000, 2, 29, 12, 30, 15, 123_456, tzinfo=dt.UTC),
        dt.datetime(2100, 3, 1, tzinfo=dt.UTC),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC),
    ]
    events = [
        IdentifyEvent(f"m{i}", "u", moment, {"vip": True}, received_at=moments[-1])
        for i, moment in enumerate(moments)
    ]
    keys = log_module._Keys(SPACE)
    assert_same_chunk(keys.columns(events), _without_speedups(keys.columns, events))


@given(moment=aware_datetimes(), other=aware_datetimes())
def test_timestamps_equal_the_python_conversion(moment: dt.datetime, other: dt.datetime) -> None:
    _speedups()
    events = [IdentifyEvent("m", "u", moment, {}, received_at=other)]
    keys = log_module._Keys(SPACE)
    chunk = keys.columns(events)
    assert (list(chunk.ts), list(chunk.recv)) == (
        [(moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)],
        [(other - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)],
    )


def test_a_long_unsorted_user_and_ties(compiled: Any) -> None:
    """A user with more events than the insertion sort takes (the qsort path), arriving in
    reverse, with ties on (timestamp, received_at) that the message id breaks."""
    events = [
        IdentifyEvent(f"m{i:03d}", "u", at(59 - i // 3), {"n": i}, received_at=at(59))
        for i in range(120)
    ]
    events += [IdentifyEvent("zz", "w", at(0), {"vip": True})]
    fast, plain = both_ways(events)
    assert fast._e_slot == plain._e_slot
    assert [e.message_id for e in fast.events("u")] == [e.message_id for e in plain.events("u")]
    assert fast.snapshot(at(59)) == reference_snapshot(SPACE, events, at(59))


def test_copies_resolved_by_the_design_rank(compiled: Any) -> None:
    """Copies of one message id: the earliest received wins, then the earliest timestamp,
    then the smallest user id; a full tie keeps the first added."""
    events = [
        IdentifyEvent("a", "u2", at(5), {"n": 1}, received_at=at(9)),
        IdentifyEvent("a", "u1", at(5), {"n": 2}, received_at=at(9)),  # smaller user id wins
        IdentifyEvent("b", "u1", at(5), {"n": 3}, received_at=at(8)),
        IdentifyEvent("b", "u1", at(4), {"n": 4}, received_at=at(8)),  # earlier timestamp wins
        IdentifyEvent("c", "u1", at(1), {"n": 5}, received_at=at(7)),  # full tie: first kept
        IdentifyEvent("c", "u1", at(1), {"n": 6}, received_at=at(7)),
        IdentifyEvent("d", "u3", at(1), {"n": 7}, received_at=at(3)),  # received first wins
        IdentifyEvent("d", "u1", at(0), {"n": 8}, received_at=at(4)),
    ]
    fast, plain = both_ways(events)
    kept = {e.message_id: (e.user_id, e.values["n"]) for e in fast.events()}
    assert kept == {"a": ("u1", 2), "b": ("u1", 4), "c": ("u1", 5), "d": ("u3", 7)}
    assert list(fast.events()) == list(plain.events())


def test_ids_the_c_code_leaves_to_python(compiled: Any) -> None:
    """Non-ASCII message ids (a lone surrogate too) are encoded as Python does; ids that are
    str subclasses are laid out by the Python code."""

    class Named(str):
        pass

    events = [
        IdentifyEvent("é-1", "u", at(0), {"n": 1}),
        IdentifyEvent("\ud800", "u", at(1), {"n": 2}),
        IdentifyEvent("日本", "ü", at(2), {"vip": True}),
    ]
    fast, plain = both_ways(events)
    assert (fast._blob, fast._m_off) == (plain._blob, plain._m_off)
    assert [e.message_id for e in fast.events()] == ["é-1", "\ud800", "日本"]

    subclassed = [IdentifyEvent(Named("m1"), Named("u"), at(0), {"n": 1})]
    keys = log_module._Keys(SPACE)
    chunk = keys.columns(subclassed)
    assert log_module._layout_compiled(chunk, keys) is None
    fast, plain = both_ways(subclassed)
    assert list(fast.events()) == list(plain.events())


def test_layout_refuses_inconsistent_columns(compiled: Any) -> None:
    """The C layout checks what it indexes by: lengths, bounds and codes."""
    keys = log_module._Keys(SPACE)
    chunk = keys.columns([IdentifyEvent("m", "u", at(0), {"n": 1, "vip": True})])
    good = [
        chunk.message_id,
        chunk.user_id,
        array("q", chunk.ts),
        array("q", chunk.recv),
        array("q", chunk.code),
        chunk.value,
        array("q", chunk.bound),
        keys.trait_names,
        keys.audience_pairs,
        4,
        2,
    ]
    assert compiled.layout(*good) is not None
    for position, bad in [
        (1, []),  # fewer users than messages
        (4, array("q", [0, 99])),  # a code out of range
        (6, array("q", [0, 5])),  # bounds past the pairs
        (2, b"\x00" * 7),  # not 8-byte integers
    ]:
        arguments = list(good)
        arguments[position] = bad
        with pytest.raises(ValueError, match="layout"):
            compiled.layout(*arguments)


def test_flatten_declines_other_objects(compiled: Any) -> None:
    """Anything but an IdentifyEvent goes to the Python code, which names it."""
    keys = log_module._Keys(SPACE)
    arguments = (IdentifyEvent, log_module._EVENT_SLOTS, keys.code, keys.compiled_checks)
    assert compiled.flatten([object()], *arguments) is None
    with pytest.raises(InvalidEventError, match="expected IdentifyEvent"):
        IdentifiesLog(SPACE, [{"message_id": "m"}])  # type: ignore[list-item]


def test_the_environment_variable_turns_them_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAS_WAREHOUSE_SPEEDUPS", "0")
    assert log_module._load_speedups() is None
    monkeypatch.setenv("PERSONAS_WAREHOUSE_SPEEDUPS", "1")
    assert log_module._load_speedups() is log_module._SPEEDUPS


def test_python_only_log_still_answers(python_only: None) -> None:
    """The fallback the speedups replace still works on its own."""
    events = [IdentifyEvent("m1", "u", at(0), {"vip": True}), IdentifyEvent("m2", "u", at(1), {})]
    log = IdentifiesLog(SPACE, events)
    assert log.reconstruct_state("u", at(5)).audiences["vip"] is True
    assert len(log) == 2


def test_no_reference_leaks(compiled: Any) -> None:
    """Building and dropping logs, and declining a batch half read, leaves every object's
    reference count as it was (the C code owns what it returns and nothing else)."""
    user, value, name = "user-" + "x" * 20, 10**20 + 1, "plan-" + "y" * 20
    space = Space(traits=[ComputedTrait("s"), ComputedTrait("n", TraitType.INTEGER)])
    good = [IdentifyEvent(f"m{i}", user, at(i % 60), {"s": name}) for i in range(50)]
    bad = [*good, IdentifyEvent("z", user, at(0), {"n": value})]  # over int64: declined
    before = sys.getrefcount(user), sys.getrefcount(name), sys.getrefcount(value)
    for _ in range(20):
        log = IdentifiesLog(space, good)
        len(log)
        del log
        with pytest.raises(InvalidEventError):
            IdentifiesLog(space, bad)
    assert (sys.getrefcount(user), sys.getrefcount(name), sys.getrefcount(value)) == before


@settings(max_examples=200)
@given(
    case=space_and_log(),
    moments=st.lists(aware_datetimes(), min_size=1, max_size=4),
    known_at=st.one_of(st.none(), aware_datetimes()),
)
def test_compiled_fold_equals_the_python_fold(
    case: Any, moments: list[dt.datetime], known_at: dt.datetime | None
) -> None:
    """``reconstruct_state`` and ``snapshot`` folded in C equal the Python fold, with and
    without ``known_at`` (the states are ordinary ``UserState`` objects: same class, equal
    fields; a user none of whose events was received by ``known_at`` is left out of the
    snapshot)."""
    _speedups()
    space, events = case
    log = IdentifiesLog(space, events)
    users = [*log.users(), "never-seen"]
    for moment in moments:
        fast = log.snapshot(moment, known_at=known_at)
        plain = _without_speedups(log.snapshot, moment, known_at=known_at)
        assert fast == plain
        assert all(type(state) is type(plain[user]) for user, state in fast.items())
        for user in users:
            state = log.reconstruct_state(user, moment, known_at=known_at)
            expected = _without_speedups(log.reconstruct_state, user, moment, known_at=known_at)
            assert state == expected
            assert all(map(same, state.traits.values(), expected.traits.values()))


def test_snapshot_leaves_the_collector_as_it_was(compiled: Any) -> None:
    """The compiled snapshot pauses the cycle collector while it makes the states and resumes
    it only if it was running."""
    import gc

    log = IdentifiesLog(SPACE, [IdentifyEvent("m", "u", at(0), {"vip": True})])
    assert log.snapshot(at(1))["u"].audiences["vip"] is True
    assert gc.isenabled()
    gc.disable()
    try:
        log.snapshot(at(1))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_fold_checks_its_ranges(compiled: Any) -> None:
    log = IdentifiesLog(SPACE, [IdentifyEvent("m", "u", at(0), {"vip": True, "n": 1})])
    len(log)
    keys = log._keys
    columns = (log._ends, log._t_key, log._t_value, log._a_pair)
    templates = (keys.trait_template, keys.audience_template)
    assert compiled.state("u", 0, 1, *columns, *templates).traits["n"] == 1
    with pytest.raises(IndexError, match="fold"):
        compiled.state("u", 0, 5, *columns, *templates)
    with pytest.raises(IndexError, match="fold"):
        compiled.state("u", 1, 0, *columns, *templates)
    with pytest.raises(TypeError, match="fold"):
        compiled.state("u", 0, 1, log._ends, (), log._t_value, log._a_pair, *templates)
    with pytest.raises(ValueError, match="u_range"):
        compiled.snapshot(0, ["u", "w"], log._u_range, log._e_ts, *columns, *templates)
    with pytest.raises(TypeError, match="e_recv"):
        compiled.state("u", 0, 1, *columns, *templates, 0, None)
    with pytest.raises(IndexError, match="fold"):  # received_at of fewer positions
        compiled.state("u", 0, 1, *columns, *templates, 0, array("q"))
    known = compiled.state("u", 0, 1, *columns, *templates, 0, log._e_recv)
    assert known.traits["n"] is None  # received after the epoch: not known at 0


@settings(max_examples=150)
@given(case=space_and_log())
def test_from_columns_equals_the_python_columns(case: Any) -> None:
    """``IdentifiesLog.from_columns`` (the path ``Warehouse.load_log`` takes) builds the same
    log, column for column, with the compiled scans of the columns and without them."""
    _speedups()
    space, events = case
    columns = as_columns(space, events)

    def built() -> dict[str, Any]:
        log = IdentifiesLog.from_columns(space, **columns)
        len(log)
        return {name: getattr(log, name) for name in IdentifiesLog.__slots__}

    got, expected = built(), _without_speedups(built)
    # Where the Python bulk check cannot vouch for a value that the exact compiled check
    # passes (an int over 2**53 in a batch that also has NUMBER traits), Python builds the
    # log from events instead, whose pairs follow each event's own key order: the same
    # pairs per event, perhaps in another order. Everything else is the same, array for array.
    pairs = ("_t_code", "_t_value", "_t_key", "_a_code", "_a_pair")
    assert_same_columns(got, expected, *pairs)
    assert event_pairs(got) == event_pairs(expected)


def event_pairs(columns: dict[str, Any]) -> list[tuple[list[Any], list[int]]]:
    """Each position's trait pairs (code, value type, value) and audience codes, sorted."""
    ends, t_code, t_value, a_code = (
        columns[n] for n in ("_ends", "_t_code", "_t_value", "_a_code")
    )
    return [
        (
            sorted(
                (t_code[j], type(t_value[j]).__name__, repr(t_value[j]))
                for j in range(ends[2 * p], ends[2 * p + 2])
            ),
            sorted(a_code[ends[2 * p + 1] : ends[2 * p + 3]]),
        )
        for p in range(len(ends) // 2 - 1)
    ]


def test_column_helpers(compiled: Any) -> None:
    """The scans ``from_columns`` uses, and what they leave to Python."""
    utc = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    rows, cells = compiled.present((None, 1, None, "a", 0.0))
    assert (array("q", rows).tolist(), cells) == ([1, 3, 4], [1, "a", 0.0])
    assert compiled.present(range(3)) is None  # another sequence: Python scans it
    assert array("q", compiled.utc_micros([utc])).tolist() == [1_704_067_200_000_000]
    paris = dt.timezone(dt.timedelta(hours=1))
    assert compiled.utc_micros([utc, utc.astimezone(paris)]) is None  # Python converts it
    assert log_module._utc_micros([utc.astimezone(paris)]) == [1_704_067_200_000_000]
    assert log_module._utc_micros([utc.replace(tzinfo=None)]) is None  # naive: refused
    codes, flat, bound = compiled.in_event_order(
        3, [array("q", [2, 0]), array("q", [0])], [7, 5], [["x", "y"], ["z"]]
    )
    assert (array("q", codes).tolist(), flat, array("q", bound).tolist()) == (
        [7, 5, 7],
        ["y", "z", "x"],
        [0, 2, 2, 3],
    )
    with pytest.raises(ValueError, match="out of range"):
        compiled.in_event_order(1, [array("q", [1])], [0], [["x"]])
    with pytest.raises(ValueError, match="length"):
        compiled.in_event_order(2, [array("q", [1])], [0], [[]])
    keys = log_module._Keys(SPACE)
    n, x = keys.code["n"], keys.code["x"]
    checks = keys.compiled_checks
    assert compiled.check_pairs(array("q", [n, x]), [1, 2.5], checks) is True
    assert compiled.check_pairs(array("q", [x]), [float("inf")], checks) is False
    assert compiled.check_pairs(array("q", [n]), ["1"], checks) is False


@settings(max_examples=150)
@given(case=space_and_log(), cuts=st.lists(st.integers(0, 40), max_size=4))
def test_adds_to_a_built_log_equal_the_python_adds(case: Any, cuts: list[int]) -> None:
    """Logs fed in batches (the second and later take the add path, over the message-id hash
    table the speedups build) are the same with and without them, column for column; only
    the hash table may order colliding ids differently."""
    _speedups()
    space, events = case

    def built() -> dict[str, Any]:
        log = IdentifiesLog(space)
        start = 0
        for cut in [*sorted(set(cuts)), len(events)]:
            log.extend(events[start:cut])
            len(log)
            start = max(start, cut)
        return {name: getattr(log, name) for name in IdentifiesLog.__slots__}

    assert_same_columns(built(), _without_speedups(built), "_table")


def test_hash_table_finds_every_message_id(compiled: Any) -> None:
    """Every message id is found from its str hash by linear probing, with its slot and
    fingerprint, and the table holds nothing else."""
    mids = [f"m{i}" for i in range(300)] + ["é", "\ud800", "日本"]
    log = IdentifiesLog(SPACE, [IdentifyEvent(m, "u", at(0), {}) for m in mids])
    len(log)
    size = 1024
    table = array("q", compiled.hash_table(log._blob, log._m_off, size, 40, (1 << 22) - 1))
    for slot, mid in enumerate(mids):
        digest = hash(mid)
        position = digest & (size - 1)
        while table[position] & ((1 << 40) - 1) != slot + 1:
            assert table[position], f"{mid!r} not found"
            position = (position + 1) & (size - 1)
        assert table[position] >> 40 == (digest >> 24) & ((1 << 22) - 1)
    assert sum(1 for entry in table if entry) == len(mids)
    with pytest.raises(ValueError, match="power of two"):
        compiled.hash_table(log._blob, log._m_off, 1000, 40, (1 << 22) - 1)
    with pytest.raises(ValueError, match="too many"):
        compiled.hash_table(log._blob, log._m_off, 256, 40, (1 << 22) - 1)


def test_cleared_rows(compiled: Any) -> None:
    """The rows clearing each key, keys in order of first appearance, a name given twice in
    one event counted once; anything else is left to the Python code."""
    keys = log_module._Keys(SPACE)
    n, s = keys.code["n"], keys.code["s"]
    grouped = compiled.cleared_rows([None, ["s"], ("n", "s", "s"), None, ["n"]], keys.code, 7)
    assert list(grouped) == [s, n]
    assert {code: array("q", rows).tolist() for code, rows in grouped.items()} == {
        s: [1, 2],
        n: [2, 4],
    }
    for column in ([{"n"}], ["n"], [["nope"]], [[1]]):
        assert compiled.cleared_rows(column, keys.code, 7) is None
    assert compiled.cleared_rows(iter([None]), keys.code, 7) is None
    # the Python code then reads it: a set is fine, a bare string is refused
    at0 = [at(0), at(1)]
    columns = {"message_id": ["m1", "m2"], "user_id": ["u", "u"], "timestamp": at0}
    log = IdentifiesLog.from_columns(SPACE, **columns, cleared=[{"n"}, None])  # type: ignore[arg-type]
    assert [dict(e.values) for e in log.events("u")] == [{"n": None}, {}]


def test_known_at_counts_what_was_received_by_then(compiled: Any) -> None:
    """An event received exactly at ``known_at`` counts; one received a microsecond later
    does not; a user with nothing received yet is left out of the snapshot."""
    late = at(5) + dt.timedelta(microseconds=1)
    events = [
        IdentifyEvent("m1", "u", at(0), {"n": 1}, received_at=at(5)),
        IdentifyEvent("m2", "u", at(1), {"n": 2}, received_at=late),
        IdentifyEvent("m3", "w", at(0), {"vip": True}, received_at=late),
    ]
    log = IdentifiesLog(SPACE, events)
    assert log.reconstruct_state("u", at(9), known_at=at(5)).traits["n"] == 1
    assert log.reconstruct_state("u", at(9), known_at=late).traits["n"] == 2
    assert set(log.snapshot(at(9), known_at=at(5))) == {"u"}
    assert log.snapshot(at(9), known_at=late)["w"].audiences["vip"] is True
