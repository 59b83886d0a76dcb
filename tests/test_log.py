"""IdentifiesLog: the seed example, the dedupe and ordering rules, history views, errors."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
from reference import reference_snapshot, reference_state

import personas_warehouse.log as log_module
from personas_warehouse.errors import (
    InvalidEventError,
    InvalidSpaceError,
    InvalidTimestampError,
    PersonasWarehouseError,
    UnsupportedValueError,
)
from personas_warehouse.log import Change, IdentifiesLog, MembershipInterval, reconstruct_state
from personas_warehouse.model import (
    Audience,
    ComputedTrait,
    IdentifyEvent,
    Membership,
    Space,
    TraitType,
    UserState,
)

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    """2018-04-17 at HH:MM:SS UTC (the seed's day)."""
    return dt.datetime.fromisoformat(f"2018-04-17T{text}+00:00")


SEED_SPACE = Space(
    traits=[ComputedTrait("computed_trait_1", TraitType.NUMBER)],
    audiences=[Audience("audience_slug_1"), Audience("audience__2")],
)


def seed_events() -> list[IdentifyEvent]:
    return [
        IdentifyEvent("m1", "u4", at("20:38:11"), {"audience_slug_1": False}),
        IdentifyEvent("m2", "u4", at("20:39:41"), {"audience_slug_1": True}),
        IdentifyEvent("m3", "u4", at("19:39:44"), {"audience__2": True}),
        IdentifyEvent("m4", "u4", at("20:36:41"), {"computed_trait_1": 3}),
        IdentifyEvent("m5", "u4", at("20:37:42"), {"computed_trait_1": 1}),
        IdentifyEvent("m6", "u5", at("10:34:51"), {"audience_slug_1": True}),
        IdentifyEvent("m7", "u5", at("10:39:41"), {"computed_trait_1": 2}),
        IdentifyEvent("m8", "u5", at("18:39:41"), {}),
    ]


def state(user: str, trait: Any, slug_1: bool | None, slug_2: bool | None) -> UserState:
    return UserState(
        user,
        {"computed_trait_1": trait},
        {"audience_slug_1": slug_1, "audience__2": slug_2},
    )


# --------------------------------------------------------------------------------------------
# The seed's example, at several times
# --------------------------------------------------------------------------------------------

U4_TIMELINE = [
    ("19:39:43", state("u4", None, None, None)),
    ("19:39:44", state("u4", None, None, True)),
    ("20:36:41", state("u4", 3, None, True)),
    ("20:37:41", state("u4", 3, None, True)),
    ("20:37:42", state("u4", 1, None, True)),
    ("20:38:11", state("u4", 1, False, True)),  # an exit with no entry: false, not null
    ("20:38:30", state("u4", 1, False, True)),
    ("20:39:40", state("u4", 1, False, True)),
    ("20:39:41", state("u4", 1, True, True)),
    ("23:59:59", state("u4", 1, True, True)),
]
U5_TIMELINE = [
    ("10:34:50", state("u5", None, None, None)),
    ("10:34:51", state("u5", None, True, None)),
    ("10:39:40", state("u5", None, True, None)),
    ("10:39:41", state("u5", 2, True, None)),
    ("18:39:41", state("u5", 2, True, None)),  # an identify with no values changes nothing
    ("20:38:30", state("u5", 2, True, None)),
]


@pytest.mark.parametrize(("time", "expected"), U4_TIMELINE + U5_TIMELINE)
def test_seed_example_states(time: str, expected: UserState) -> None:
    log = IdentifiesLog(SEED_SPACE, seed_events())
    got = log.reconstruct_state(expected.user_id, at(time))
    assert got == expected
    assert reconstruct_state(log, expected.user_id, at(time)) == expected
    assert got == reference_state(SEED_SPACE, seed_events(), expected.user_id, at(time))


def test_seed_example_issue_values() -> None:
    log = IdentifiesLog(SEED_SPACE, seed_events())
    u4 = log.reconstruct_state("u4", at("20:38:30"))
    assert u4.audiences["audience_slug_1"] is False
    assert u4.audiences["audience__2"] is True
    assert u4.traits["computed_trait_1"] == 1
    assert u4.membership("audience_slug_1") is Membership.EXITED
    assert u4.membership("audience__2") is Membership.IN


@pytest.mark.parametrize(
    ("time", "users"),
    [
        ("10:00:00", set()),
        ("10:34:51", {"u5"}),
        ("19:39:44", {"u4", "u5"}),
        ("23:00:00", {"u4", "u5"}),
    ],
)
def test_seed_example_snapshot(time: str, users: set[str]) -> None:
    log = IdentifiesLog(SEED_SPACE, seed_events())
    snap = log.snapshot(at(time))
    assert set(snap) == users
    assert snap == reference_snapshot(SEED_SPACE, seed_events(), at(time))
    for user, user_state in snap.items():
        assert user_state == log.reconstruct_state(user, at(time))


def test_seed_example_in_other_time_zones() -> None:
    log = IdentifiesLog(SEED_SPACE, seed_events())
    plus_two = dt.timezone(dt.timedelta(hours=2))
    # 22:38:30+02:00 is 20:38:30Z
    assert log.reconstruct_state("u4", dt.datetime(2018, 4, 17, 22, 38, 30, tzinfo=plus_two)) == (
        state("u4", 1, False, True)
    )


def test_seed_example_history() -> None:
    log = IdentifiesLog(SEED_SPACE, seed_events())
    changes = [(c.timestamp, c.message_id, c.key, c.old, c.new) for c in log.history("u4")]
    assert changes == [
        (at("19:39:44"), "m3", "audience__2", None, True),
        (at("20:36:41"), "m4", "computed_trait_1", None, 3),
        (at("20:37:42"), "m5", "computed_trait_1", 3, 1),
        (at("20:38:11"), "m1", "audience_slug_1", None, False),
        (at("20:39:41"), "m2", "audience_slug_1", False, True),
    ]
    first = log.history("u4")[0]
    assert first == Change("u4", at("19:39:44"), at("19:39:44"), "m3", "audience__2", None, True)
    assert [c.key for c in log.history("u5")] == ["audience_slug_1", "computed_trait_1"]
    assert log.history("nobody") == []


def test_seed_example_audience_views() -> None:
    log = IdentifiesLog(SEED_SPACE, seed_events())
    assert log.membership_intervals("audience_slug_1") == [
        MembershipInterval("u4", "audience_slug_1", at("20:39:41"), None),
        MembershipInterval("u5", "audience_slug_1", at("10:34:51"), None),
    ]
    assert log.membership_intervals("audience_slug_1", "u4") == [
        MembershipInterval("u4", "audience_slug_1", at("20:39:41"), None)
    ]
    assert log.members("audience_slug_1", at("20:38:30")) == {"u5"}
    assert log.members("audience_slug_1", at("20:39:41")) == {"u4", "u5"}
    assert log.members("audience__2", at("20:00:00")) == {"u4"}
    times = [at("10:00:00"), at("10:34:51"), at("20:39:41")]
    assert log.audience_size("audience_slug_1", times) == [
        (times[0], 0),
        (times[1], 1),
        (times[2], 2),
    ]


# --------------------------------------------------------------------------------------------
# Ordering, ties, late arrivals, known_at
# --------------------------------------------------------------------------------------------

VIP_SPACE = Space(
    traits=[
        ComputedTrait("visits", TraitType.INTEGER),
        ComputedTrait("plan", TraitType.STRING),
    ],
    audiences=[Audience("vip")],
)
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)


def minute(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


def test_ties_on_timestamp_are_broken_by_received_at_then_message_id() -> None:
    events = [
        IdentifyEvent("b", "u1", minute(1), {"visits": 2}, received_at=minute(2)),
        IdentifyEvent("a", "u1", minute(1), {"visits": 1}, received_at=minute(3)),
        IdentifyEvent("c", "u1", minute(1), {"plan": "gold"}, received_at=minute(2)),
        IdentifyEvent("d", "u1", minute(1), {"plan": "silver"}, received_at=minute(2)),
    ]
    log = IdentifiesLog(VIP_SPACE, events)
    got = log.reconstruct_state("u1", minute(1))
    # visits: "a" was received last; plan: "d" > "c" at the same received_at
    assert got.traits == {"visits": 1, "plan": "silver"}
    assert [e.message_id for e in log.events("u1")] == ["b", "c", "d", "a"]


def test_a_late_arrival_changes_the_past_but_not_what_was_known() -> None:
    log = IdentifiesLog(
        VIP_SPACE,
        [
            IdentifyEvent("m1", "u1", minute(0), {"visits": 1}),
            IdentifyEvent("m3", "u1", minute(10), {"visits": 3}),
        ],
    )
    assert log.reconstruct_state("u1", minute(5)).traits["visits"] == 1
    late = IdentifyEvent("m2", "u1", minute(4), {"visits": 2}, received_at=minute(20))
    log.add(late)
    assert log.reconstruct_state("u1", minute(5)).traits["visits"] == 2
    assert log.reconstruct_state("u1", minute(5), known_at=minute(15)).traits["visits"] == 1
    assert log.reconstruct_state("u1", minute(5), known_at=minute(20)).traits["visits"] == 2
    # at 10 the later event wins regardless of when m2 arrived
    assert log.reconstruct_state("u1", minute(30)).traits["visits"] == 3


def test_known_at_before_anything_arrived_gives_the_empty_state() -> None:
    log = IdentifiesLog(VIP_SPACE, [IdentifyEvent("m1", "u1", minute(0), {"vip": True})])
    assert log.reconstruct_state("u1", minute(5), known_at=minute(-1)) == UserState.empty(
        VIP_SPACE, "u1"
    )
    assert log.snapshot(minute(5), known_at=minute(-1)) == {}
    assert log.snapshot(minute(5), known_at=minute(0)) == {
        "u1": UserState("u1", {"visits": None, "plan": None}, {"vip": True})
    }


def test_explicit_clear_sets_a_trait_back_to_none() -> None:
    log = IdentifiesLog(
        VIP_SPACE,
        [
            IdentifyEvent("m1", "u1", minute(0), {"plan": "gold", "visits": 4}),
            IdentifyEvent("m2", "u1", minute(1), {"plan": None}),
        ],
    )
    assert log.reconstruct_state("u1", minute(1)).traits == {"visits": 4, "plan": None}
    assert [(c.key, c.old, c.new) for c in log.history("u1")] == [
        ("visits", None, 4),
        ("plan", None, "gold"),
        ("plan", "gold", None),
    ]


def test_a_future_timestamp_counts_at_later_times_only() -> None:
    log = IdentifiesLog(
        VIP_SPACE, [IdentifyEvent("m1", "u1", minute(60), {"vip": True}, received_at=minute(0))]
    )
    assert log.reconstruct_state("u1", minute(30)).audiences["vip"] is None
    assert log.snapshot(minute(30)) == {}
    assert log.reconstruct_state("u1", minute(60)).audiences["vip"] is True


def test_unknown_user_gets_every_key_none() -> None:
    log = IdentifiesLog(VIP_SPACE, [IdentifyEvent("m1", "u1", minute(0), {"vip": True})])
    assert log.reconstruct_state("ghost", minute(5)) == UserState.empty(VIP_SPACE, "ghost")
    assert IdentifiesLog(VIP_SPACE).reconstruct_state("ghost", minute(5)) == UserState.empty(
        VIP_SPACE, "ghost"
    )


def test_states_are_fresh_dicts_the_caller_may_not_corrupt() -> None:
    log = IdentifiesLog(VIP_SPACE, [IdentifyEvent("m1", "u1", minute(0), {"vip": True})])
    first = log.reconstruct_state("u1", minute(0))
    assert type(first) is UserState
    assert type(first.traits) is dict
    first.traits["visits"] = 99  # type: ignore[index]
    first.audiences["vip"] = False  # type: ignore[index]
    again = log.reconstruct_state("u1", minute(0))
    assert again.traits["visits"] is None
    assert again.audiences["vip"] is True
    assert log.snapshot(minute(0))["u1"] == again


def test_excluded_keys_are_absent_from_states_and_refused_in_events() -> None:
    space = Space(
        traits=[ComputedTrait("visits", TraitType.INTEGER), ComputedTrait("secret")],
        audiences=[Audience("vip")],
        excluded=["secret"],
    )
    log = IdentifiesLog(space, [IdentifyEvent("m1", "u1", minute(0), {"visits": 1})])
    assert log.reconstruct_state("u1", minute(0)).traits == {"visits": 1}
    with pytest.raises(InvalidEventError, match="excluded"):
        log.add(IdentifyEvent("m2", "u1", minute(0), {"secret": "x"}))


# --------------------------------------------------------------------------------------------
# Duplicates by message id (DESIGN.md rule 1, over the whole log)
# --------------------------------------------------------------------------------------------


def test_the_copy_received_first_wins_even_when_added_later() -> None:
    late_copy = IdentifyEvent("m1", "u1", minute(0), {"visits": 2}, received_at=minute(5))
    early_copy = IdentifyEvent("m1", "u1", minute(0), {"visits": 1}, received_at=minute(1))
    for order in ([late_copy, early_copy], [early_copy, late_copy]):
        log = IdentifiesLog(VIP_SPACE, order)
        assert len(log) == 1
        assert log.reconstruct_state("u1", minute(9)).traits["visits"] == 1
    # added in two steps, with reads in between (the placed copy is replaced)
    log = IdentifiesLog(VIP_SPACE, [late_copy])
    assert log.reconstruct_state("u1", minute(9)).traits["visits"] == 2
    log.add(early_copy)
    assert log.reconstruct_state("u1", minute(9)).traits["visits"] == 1
    log.add(late_copy)
    assert log.reconstruct_state("u1", minute(9)).traits["visits"] == 1
    assert len(log) == 1


def test_same_received_at_then_earliest_timestamp_then_smallest_user() -> None:
    a = IdentifyEvent("m1", "u2", minute(2), {"visits": 1}, received_at=minute(5))
    b = IdentifyEvent("m1", "u2", minute(1), {"visits": 2}, received_at=minute(5))
    c = IdentifyEvent("m1", "u1", minute(1), {"visits": 3}, received_at=minute(5))
    for events in ([a, b, c], [c, b, a], [b, a, c]):
        log = IdentifiesLog(VIP_SPACE, events)
        assert log.snapshot(minute(9)) == {
            "u1": UserState("u1", {"visits": 3, "plan": None}, {"vip": None})
        }
        assert log.users() == ["u1"]
    log = IdentifiesLog(VIP_SPACE, [a])
    assert log.users() == ["u2"]
    log.add(b)
    assert log.reconstruct_state("u2", minute(9)).traits["visits"] == 2
    log.add(c)  # the event moves to another user; u2 is left with nothing
    assert log.users() == ["u1"]
    assert log.reconstruct_state("u2", minute(9)) == UserState.empty(VIP_SPACE, "u2")
    assert log.history("u2") == []
    assert log.snapshot(minute(9)).keys() == {"u1"}


def test_a_later_copy_that_differs_is_ignored() -> None:
    first = IdentifyEvent("m1", "u1", minute(0), {"vip": True})
    differing = IdentifyEvent("m1", "u1", minute(0), {"vip": False})
    log = IdentifiesLog(VIP_SPACE, [first, differing])
    assert log.reconstruct_state("u1", minute(0)).audiences["vip"] is True
    log.add(differing)
    assert log.reconstruct_state("u1", minute(0)).audiences["vip"] is True
    assert [e.values for e in log.events()] == [{"vip": True}]


def test_many_batches_with_reads_between_match_the_reference() -> None:
    """Exercises hash-table growth (rehash), probing, re-placing users and compaction."""
    events = []
    for i in range(3000):
        user = f"user-{i % 37}"
        values: dict[str, Any] = {"visits": i} if i % 3 else {"vip": i % 2 == 0}
        events.append(
            IdentifyEvent(f"msg-{i % 2500}", user, minute(i % 101), values, received_at=minute(i))
        )
    log = IdentifiesLog(VIP_SPACE)
    for start in range(0, len(events), 97):
        log.extend(events[start : start + 97])
        log.reconstruct_state("user-0", minute(50))  # index between batches
    assert len(log) == 2500
    for ts in (minute(-1), minute(40), minute(100), minute(5000)):
        assert log.snapshot(ts) == reference_snapshot(VIP_SPACE, events, ts)
        assert log.snapshot(ts, known_at=minute(1500)) == reference_snapshot(
            VIP_SPACE, events, ts, minute(1500)
        )
    # the log did not keep every abandoned range
    assert len(log._e_ts) <= 2 * len(log) + 1024


def test_one_large_batch_then_later_adds_match_the_reference() -> None:
    """The bulk first build (duplicates resolved by rank, late arrivals, users re-sorted on
    the full key, non-ASCII ids) and then adds that build the hash table from its columns."""
    events = []
    for i in range(4000):
        user = f"user-{(i * 7919) % 53}"
        values: dict[str, Any] = {"visits": i % 11} if i % 3 else {"vip": i % 2 == 0}
        if i % 5 == 0:
            values["visits"] = None  # an explicit clear
        received = minute(i)
        stamp = minute(i - 300) if i % 17 == 0 else received  # late: happened earlier
        mid = f"msg-{i % 3300}" + ("é" if i % 13 == 0 else "")
        events.append(IdentifyEvent(mid, user, stamp, values, received_at=received))
    # copies of ids already used: some received earlier (they win), some later (they lose)
    events += [
        IdentifyEvent(e.message_id, "user-x", e.timestamp, {"vip": True}, received_at=minute(-5))
        for e in events[100:400:9]
    ]
    events += [attrs.evolve(e, received_at=minute(9000)) for e in events[400:700:7]]
    first, rest = events[:3000], events[3000:]
    for ts in (minute(-400), minute(700), minute(2999), minute(9999)):
        for known_at in (None, minute(1200)):
            log = IdentifiesLog(VIP_SPACE, first)
            assert log.snapshot(ts, known_at=known_at) == reference_snapshot(
                VIP_SPACE, first, ts, known_at
            )
            log.extend(rest[:500])
            log.extend(rest[500:])
            want = reference_snapshot(VIP_SPACE, events, ts, known_at)
            assert log.snapshot(ts, known_at=known_at) == want
            assert IdentifiesLog(VIP_SPACE, events).snapshot(ts, known_at=known_at) == want
    assert len(log) == len({e.message_id for e in events})


def test_message_ids_in_any_script_and_lone_surrogates() -> None:
    ids = ["ü", "日本", "🎉", "\ud800", "a\udfffb", "'; DROP TABLE x; --", "a" * 500]
    events = [
        IdentifyEvent(mid, "u1", minute(0), {"visits": i}, received_at=minute(1))
        for i, mid in enumerate(ids)
    ]
    log = IdentifiesLog(VIP_SPACE, events + events)
    assert len(log) == len(ids)
    assert sorted(e.message_id for e in log.events()) == sorted(ids)
    # same timestamp and received_at: the largest message id (code point order) decides
    assert log.reconstruct_state("u1", minute(0)) == reference_state(
        VIP_SPACE, events, "u1", minute(0)
    )


def test_events_are_the_deduplicated_log_in_time_order() -> None:
    events = [*seed_events(), seed_events()[0]]
    log = IdentifiesLog(SEED_SPACE, events)
    got = list(log.events())
    assert len(got) == len(log) == 8
    assert [e.timestamp for e in got] == sorted(e.timestamp for e in seed_events())
    assert sorted((e.message_id, e.user_id, e.timestamp, dict(e.values)) for e in got) == sorted(
        (e.message_id, e.user_id, e.timestamp, dict(e.values)) for e in seed_events()
    )
    assert [e.message_id for e in log.events("u5")] == ["m6", "m7", "m8"]
    assert list(log.events("nobody")) == []
    # a log rebuilt from its own events is the same log
    again = IdentifiesLog(SEED_SPACE, got)
    assert again.snapshot(at("23:00:00")) == log.snapshot(at("23:00:00"))


def test_a_pickled_log_rebuilds_its_hash_table_in_the_new_process() -> None:
    import pickle
    import subprocess
    import sys

    log = IdentifiesLog(SEED_SPACE, seed_events()[:5])  # u4's events
    assert len(log) == 5  # indexed: the hash table is filled (and has room for more)
    blob = pickle.dumps(log)
    copy = pickle.loads(blob)
    assert copy.snapshot(at("23:00:00")) == log.snapshot(at("23:00:00"))
    # another process hashes strings differently: a duplicate must still be found there
    script = (
        "import pickle, sys, datetime as dt\n"
        "from personas_warehouse.model import IdentifyEvent\n"
        "log = pickle.loads(sys.stdin.buffer.read())\n"
        "t = dt.datetime(2018, 4, 17, 23, tzinfo=dt.UTC)\n"
        "log.add(IdentifyEvent('m2', 'u9', t, {}))\n"
        "print(len(log), log.users())\n"
    )
    for seed in ("1", "2", "3"):
        result = subprocess.run(
            [sys.executable, "-c", script],
            input=blob,
            capture_output=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": ":".join(sys.path)},
        )
        assert result.stdout.decode().strip() == "5 ['u4']"


def test_users_and_len_and_repr() -> None:
    log = IdentifiesLog(SEED_SPACE, seed_events())
    assert log.users() == ["u4", "u5"]
    assert len(log) == 8
    assert "8 events" in repr(log)
    assert log.space is SEED_SPACE


# --------------------------------------------------------------------------------------------
# Values of every type
# --------------------------------------------------------------------------------------------

EVERY_TYPE = Space(
    traits=[ComputedTrait(f"t_{kind.value}", kind) for kind in TraitType],
    audiences=[Audience("a")],
)


def test_values_of_every_type_round_trip() -> None:
    plus_five = dt.timezone(dt.timedelta(hours=5))
    values: dict[str, Any] = {
        "t_boolean": False,
        "t_integer": 2**63 - 1,
        "t_number": 1.5,
        "t_string": "naïve 'quoted'",
        "t_timestamp": dt.datetime(2020, 1, 1, 5, tzinfo=plus_five),
        "t_json": {"a": [1, 2.5, None, True], "b": "x"},
        "a": True,
    }
    log = IdentifiesLog(EVERY_TYPE, [IdentifyEvent("m1", "u1", minute(0), values)])
    got = log.reconstruct_state("u1", minute(0))
    assert got.traits["t_timestamp"] == dt.datetime(2020, 1, 1, tzinfo=UTC)
    assert got.traits["t_timestamp"].tzinfo is UTC  # normalised to UTC by the Space
    assert got.traits == {k: v for k, v in values.items() if k != "a"}
    assert got.traits["t_boolean"] is False
    event = next(log.events())
    assert dict(event.values) == {**values, "t_timestamp": dt.datetime(2020, 1, 1, tzinfo=UTC)}


def test_number_takes_ints_and_floats_but_history_sees_the_type() -> None:
    space = Space(traits=[ComputedTrait("n", TraitType.NUMBER)])
    log = IdentifiesLog(
        space,
        [
            IdentifyEvent("m1", "u1", minute(0), {"n": 1}),
            IdentifyEvent("m2", "u1", minute(1), {"n": 1.0}),
            IdentifyEvent("m3", "u1", minute(2), {"n": 1.0}),
        ],
    )
    assert [(c.message_id, c.old, c.new) for c in log.history("u1")] == [
        ("m1", None, 1),
        ("m2", 1, 1.0),
    ]
    assert type(log.reconstruct_state("u1", minute(5)).traits["n"]) is float


# --------------------------------------------------------------------------------------------
# Errors: each says what to fix, each derives from PersonasWarehouseError
# --------------------------------------------------------------------------------------------


@pytest.fixture
def vip_log() -> IdentifiesLog:
    return IdentifiesLog(VIP_SPACE, [IdentifyEvent("m1", "u1", minute(0), {"vip": True})])


NAIVE = dt.datetime(2024, 1, 1)


@pytest.mark.parametrize(
    "call",
    [
        lambda log: log.reconstruct_state("u1", NAIVE),
        lambda log: log.reconstruct_state("ghost", NAIVE),
        lambda log: log.reconstruct_state("u1", minute(0), known_at=NAIVE),
        lambda log: log.reconstruct_state("ghost", minute(0), known_at=NAIVE),
        lambda log: log.reconstruct_state("u1", "2024-01-01T00:00:00Z"),
        lambda log: log.reconstruct_state("u1", 1704067200),
        lambda log: log.snapshot(NAIVE),
        lambda log: log.snapshot(minute(0), known_at=NAIVE),
        lambda log: log.members("vip", NAIVE),
        lambda log: log.members("vip", minute(0), known_at=NAIVE),
        lambda log: log.audience_size("vip", [minute(0), NAIVE]),
        lambda log: reconstruct_state(log, "u1", NAIVE),
    ],
)
def test_naive_or_non_datetime_times_are_refused(call: Any, vip_log: IdentifiesLog) -> None:
    with pytest.raises(InvalidTimestampError, match=r"time zone|timezone-aware"):
        call(vip_log)


def test_invalid_timestamp_error_says_how_to_fix(vip_log: IdentifiesLog) -> None:
    with pytest.raises(InvalidTimestampError, match=r"tzinfo=datetime.UTC") as info:
        vip_log.reconstruct_state("u1", NAIVE)
    assert isinstance(info.value, PersonasWarehouseError)


@pytest.mark.parametrize(
    ("values", "error", "match"),
    [
        ({"nope": 1}, InvalidEventError, "unknown key 'nope'"),
        ({"vip": None}, InvalidEventError, "membership never goes back to never"),
        ({"vip": 1}, InvalidEventError, "audience 'vip' takes True"),
        ({"visits": "3"}, InvalidEventError, "INTEGER"),
        ({"visits": True}, InvalidEventError, "INTEGER"),
        ({"visits": 2**64}, UnsupportedValueError, "64-bit"),
        ({"plan": "a\x00b"}, UnsupportedValueError, "NUL"),
        ({"plan": 5}, InvalidEventError, "STRING"),
    ],
)
def test_invalid_values_are_refused_and_the_batch_adds_nothing(
    values: dict[str, Any], error: type[Exception], match: str, vip_log: IdentifiesLog
) -> None:
    good = IdentifyEvent("m2", "u2", minute(1), {"visits": 1})
    bad = IdentifyEvent("m3", "u2", minute(2), values)
    with pytest.raises(error, match=match):
        vip_log.extend([good, bad])
    with pytest.raises(error, match=match):
        IdentifiesLog(VIP_SPACE, [good, bad])
    assert len(vip_log) == 1
    assert vip_log.users() == ["u1"]


@pytest.mark.parametrize(
    ("values", "error", "match"),
    [
        ({"n": float("nan")}, UnsupportedValueError, "NaN"),
        ({"n": float("inf")}, UnsupportedValueError, "infinity"),
        ({"n": 2**60}, UnsupportedValueError, "2\\*\\*53"),
        ({"n": False}, InvalidEventError, "a bool is not a number"),
        ({"j": float("nan")}, UnsupportedValueError, "JSON"),
        ({"j": (1, 2)}, UnsupportedValueError, "round trip"),
        ({"ts": NAIVE}, InvalidTimestampError, "time zone"),
    ],
)
def test_values_the_fast_checks_must_not_let_through(
    values: dict[str, Any], error: type[Exception], match: str
) -> None:
    space = Space(
        traits=[
            ComputedTrait("n", TraitType.NUMBER),
            ComputedTrait("j", TraitType.JSON),
            ComputedTrait("ts", TraitType.TIMESTAMP),
        ]
    )
    fine = [IdentifyEvent(f"ok{i}", "u1", minute(i), {"n": 1.5 * i}) for i in range(50)]
    with pytest.raises(error, match=match):
        IdentifiesLog(space, [*fine, IdentifyEvent("bad", "u1", minute(0), values)])


def test_only_identify_events_are_accepted(vip_log: IdentifiesLog) -> None:
    with pytest.raises(InvalidEventError, match="expected IdentifyEvent"):
        vip_log.add({"message_id": "m1"})  # type: ignore[arg-type]
    with pytest.raises(InvalidEventError, match="expected IdentifyEvent"):
        vip_log.extend([IdentifyEvent("m2", "u1", minute(0)), "m3"])  # type: ignore[list-item]
    assert len(vip_log) == 1


def test_space_must_be_a_space() -> None:
    with pytest.raises(InvalidSpaceError, match=r"needs a personas_warehouse\.Space"):
        IdentifiesLog({"traits": []})  # type: ignore[arg-type]


def test_log_must_be_a_log() -> None:
    with pytest.raises(InvalidEventError, match="needs an IdentifiesLog"):
        reconstruct_state([], "u1", minute(0))  # type: ignore[arg-type]


def test_user_id_must_be_a_string(vip_log: IdentifiesLog) -> None:
    with pytest.raises(InvalidEventError, match="user_id must be a string"):
        vip_log.reconstruct_state(1, minute(0))  # type: ignore[arg-type]
    with pytest.raises(InvalidEventError, match="user_id must be a string"):
        vip_log.history(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("audience", ["visits", "nope"])
def test_audience_views_refuse_keys_that_are_not_audiences(
    audience: str, vip_log: IdentifiesLog
) -> None:
    for call in (
        lambda: vip_log.membership_intervals(audience),
        lambda: vip_log.members(audience, minute(0)),
        lambda: vip_log.audience_size(audience, [minute(0)]),
    ):
        with pytest.raises(
            InvalidEventError, match=r"unknown audience .*known audiences: \['vip'\]"
        ):
            call()


def test_interval_contains_needs_an_aware_time() -> None:
    interval = MembershipInterval("u1", "vip", minute(0), minute(5))
    assert interval.contains(minute(0))
    assert not interval.contains(minute(5))
    with pytest.raises(InvalidTimestampError):
        interval.contains(NAIVE)


def test_module_exports() -> None:
    assert set(log_module.__all__) == {
        "Change",
        "IdentifiesLog",
        "MembershipInterval",
        "reconstruct_state",
    }
