"""Hypothesis strategies for Spaces, identify events and logs (the ``testing`` extra).

They generate the data that breaks pipelines: awkward keys (spaces, quotes, unicode, SQL reserved
words, leading digits, long names), timestamps in a small window so ties are common and in
several UTC offsets, late arrivals, duplicated message ids (identical copies and copies that
differ), explicit trait clears and audience exits with no earlier entry. Use them to
property-test your own pipeline against :class:`personas_warehouse.IdentifiesLog`.

>>> from hypothesis import given, settings
>>> from personas_warehouse.log import IdentifiesLog
>>> @settings(max_examples=20)
... @given(data=st.data())
... def test_snapshot_matches_reconstruct(data):
...     space = data.draw(spaces())
...     log = IdentifiesLog(space, data.draw(event_logs(space)))
...     ts = data.draw(aware_datetimes())
...     for user, state in log.snapshot(ts).items():
...         assert state == log.reconstruct_state(user, ts)
>>> test_snapshot_matches_reconstruct()
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any, Final

from hypothesis import strategies as st

from personas_warehouse.model import (
    INT64_MAX,
    INT64_MIN,
    Audience,
    ComputedTrait,
    IdentifyEvent,
    Space,
    TraitType,
    portable_stem,
)

__all__ = [
    "AWKWARD_KEYS",
    "DEFAULT_MESSAGE_IDS",
    "DEFAULT_USER_IDS",
    "aware_datetimes",
    "event_logs",
    "identify_events",
    "keys",
    "spaces",
    "trait_values",
]

AWKWARD_KEYS: Final[tuple[str, ...]] = (
    "id",
    "timestamp",
    "received_at",
    "user_id",
    "uuid_ts",
    "select",
    "from",
    "order",
    "group",
    "2FA Enabled",
    "30d visits",
    "key with spaces",
    "it's quoted",
    'say "hi"',
    "back\\slash",
    "naïve café",
    "日本語の特性",
    "emoji 🎉 fans",
    "orderID",
    "CStringRef",
    "a-b.c",
    "x" * 300,
    "L" + "ong_" * 40,
)
"""Keys that have broken SQL generators: reserved words, quoting, unicode, length."""

_WINDOW_START: Final = dt.datetime(2024, 3, 10, 12, 0, tzinfo=dt.UTC)
_OFFSETS: Final = (
    dt.UTC,
    dt.timezone(dt.timedelta(hours=2)),
    dt.timezone(dt.timedelta(hours=-5, minutes=-30)),
    dt.timezone(dt.timedelta(hours=14)),
)


_CHARACTERS: Final = st.characters(codec="utf-8", exclude_characters="\x00")
"""Any character a warehouse can store: no NUL, no lone surrogate."""


@functools.cache
def keys() -> st.SearchStrategy[str]:
    """Trait and audience keys, often awkward (see :data:`AWKWARD_KEYS`)."""
    plain = st.text(
        alphabet=_CHARACTERS,
        min_size=1,
        max_size=24,
    ).filter(lambda key: bool(key.strip()))
    return st.one_of(st.sampled_from(AWKWARD_KEYS), plain)


def _portable(candidates: Sequence[str]) -> list[str]:
    """The keys, minus any that would share a column with an earlier one."""
    kept: list[str] = []
    stems: set[str] = set()
    for key in candidates:
        stem = portable_stem(key)
        if stem and stem in stems:
            continue
        stems.add(stem)
        kept.append(key)
    return kept


@st.composite
def spaces(draw: st.DrawFn, min_keys: int = 1, max_keys: int = 6) -> Space:
    """Valid Spaces: ``min_keys`` to ``max_keys`` traits (of any type) and audiences, with keys
    that never share a column (a key whose column would collide with an earlier one is
    dropped before the Space is made)."""
    if min_keys < 1 or max_keys < min_keys:
        raise ValueError(f"need 1 <= min_keys <= max_keys, got {min_keys}, {max_keys}")
    names = draw(
        st.lists(keys(), min_size=min_keys, max_size=max_keys, unique=True)
        .map(_portable)
        .filter(lambda kept: len(kept) >= min_keys)
    )
    traits: list[ComputedTrait] = []
    audiences: list[Audience] = []
    for name in names:
        if draw(st.booleans()):
            traits.append(ComputedTrait(name, draw(st.sampled_from(TraitType))))
        else:
            audiences.append(Audience(name))
    return Space(traits=traits, audiences=audiences)


@functools.cache
def aware_datetimes(
    window_seconds: int = 12, start: dt.datetime = _WINDOW_START
) -> st.SearchStrategy[dt.datetime]:
    """Aware datetimes within ``window_seconds`` of ``start`` (a few distinct instants, so
    ties happen often), some with microseconds, in several UTC offsets."""
    micros = st.one_of(st.just(0), st.just(0), st.integers(0, 999_999))
    return st.builds(
        lambda seconds, micro, zone: (
            start + dt.timedelta(seconds=seconds, microseconds=micro)
        ).astimezone(zone),
        st.integers(0, window_seconds),
        micros,
        st.sampled_from(_OFFSETS),
    )


@functools.cache
def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**53), 2**53),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(alphabet=_CHARACTERS),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(
                st.text(max_size=5).filter(lambda k: "\x00" not in k), children, max_size=3
            ),
        ),
        max_leaves=6,
    )


@functools.cache
def trait_values(trait_type: TraitType) -> st.SearchStrategy[Any]:
    """Values a trait of ``trait_type`` accepts (never ``None``: clears are drawn apart)."""
    if trait_type is TraitType.BOOLEAN:
        return st.booleans()
    if trait_type is TraitType.INTEGER:
        return st.one_of(st.integers(-3, 3), st.integers(INT64_MIN, INT64_MAX))
    if trait_type is TraitType.NUMBER:
        return st.one_of(
            st.integers(-3, 3),
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(-(2**53), 2**53),
        )
    if trait_type is TraitType.STRING:
        return st.one_of(
            st.sampled_from(["", "gold", "it's", "naïve", "a\\b"]),
            st.text(alphabet=_CHARACTERS),
        )
    if trait_type is TraitType.TIMESTAMP:
        return aware_datetimes(window_seconds=86_400 * 365)
    if trait_type is TraitType.JSON:
        return _json_values().filter(lambda value: value is not None)
    raise ValueError(f"unknown trait type {trait_type!r}")


@functools.lru_cache(maxsize=4096)
def _value_for(space: Space, key: str) -> st.SearchStrategy[Any]:
    if space.is_audience(key):
        return st.booleans()
    return st.one_of(st.none(), trait_values(space.trait_types[key]))


@st.composite
def _values(draw: st.DrawFn, space: Space) -> dict[str, Any]:
    if not space.keys:
        return {}
    chosen = draw(st.lists(st.sampled_from(space.keys), unique=True, max_size=len(space.keys)))
    return {key: draw(_value_for(space, key)) for key in chosen}


DEFAULT_USER_IDS: Final = ("u1", "u2", "u3", "u4")
DEFAULT_MESSAGE_IDS: Final = tuple(f"m{i}" for i in range(12))


@st.composite
def identify_events(
    draw: st.DrawFn,
    space: Space,
    *,
    user_ids: st.SearchStrategy[str] | None = None,
    message_ids: st.SearchStrategy[str] | None = None,
    timestamps: st.SearchStrategy[dt.datetime] | None = None,
) -> IdentifyEvent:
    """One event of ``space``: some keys (traits sometimes explicitly cleared with ``None``),
    ``received_at`` equal to the timestamp, later (a late arrival) or earlier (clock skew)."""
    times = timestamps if timestamps is not None else aware_datetimes()
    timestamp = draw(times)
    received = draw(
        st.one_of(
            st.none(),
            st.just(timestamp),
            st.integers(1, 30).map(lambda s: timestamp + dt.timedelta(seconds=s)),
            times,
        )
    )
    return IdentifyEvent(
        message_id=draw(message_ids or st.sampled_from(DEFAULT_MESSAGE_IDS)),
        user_id=draw(user_ids or st.sampled_from(DEFAULT_USER_IDS)),
        timestamp=timestamp,
        values=draw(_values(space)),
        received_at=received,  # type: ignore[arg-type]  # None: the same as timestamp
    )


@st.composite
def event_logs(
    draw: st.DrawFn,
    space: Space,
    max_size: int = 20,
    *,
    user_ids: st.SearchStrategy[str] | None = None,
    message_ids: st.SearchStrategy[str] | None = None,
    timestamps: st.SearchStrategy[dt.datetime] | None = None,
) -> list[IdentifyEvent]:
    """A list of events of ``space``, as a warehouse sees them: ties on timestamp, late
    arrivals, message ids sent twice (identical copies, and copies that differ in user, time
    or values), explicit clears, exits with no entry. Every event is valid for ``space``."""
    events = draw(
        st.lists(
            identify_events(
                space, user_ids=user_ids, message_ids=message_ids, timestamps=timestamps
            ),
            max_size=max_size,
        )
    )
    copies: list[IdentifyEvent] = []
    for event in events:
        if draw(st.integers(0, 5)) == 0:
            copies.append(event)  # the same event delivered twice
        elif draw(st.integers(0, 5)) == 0:
            other = draw(
                identify_events(
                    space, user_ids=user_ids, message_ids=message_ids, timestamps=timestamps
                )
            )
            copies.append(
                IdentifyEvent(
                    event.message_id,
                    other.user_id,
                    other.timestamp,
                    other.values,
                    received_at=other.received_at,
                )
            )
    merged = events + copies
    return draw(st.permutations(merged)) if merged else merged
