"""Plan a sync: this run's computed results + the state the warehouse holds -> change events.

Pure: no I/O. The runner (:class:`personas_warehouse.runner.warehouse.Warehouse`) reads the
previous state from the warehouse, calls :func:`plan_sync`, and writes the plan.

The plan holds only changes, as Segment Engage sends them:

- the first run (nothing held yet) sends every value and every audience member;
- later runs send entries (``True``) for members who are not in now, exits (``False``) for users
  who are in and are missing from the audience's member set, and trait values that differ from
  the held ones;
- nobody is ever exited who was never in: a user whose membership is ``False`` or ``None`` and
  who is not in the set is not a change;
- a ``None`` trait for a user with no value is not a change; a ``None`` for a user with a value
  is an explicit clear;
- equality knows the trait's type: a NUMBER column stores a double, so ``1`` and ``1.0`` are the
  same NUMBER, but a bool is never a number; a JSON document compares type-aware all the way
  down (``1``, ``1.0`` and ``true`` are three different documents).

Every changed user gets one identify event carrying all their changed keys, with
``timestamp = at`` and ``received_at`` = the clock (the wall clock in UTC unless one is passed).

Message ids are deterministic: a hash of the schema, the user id, ``at``, the changed values
(with their types), the values they replace and, when the caller passes one, a version token of
the held row (the runner passes the ``received_at`` of the user's latest event). Same inputs
and same held state, same ids. What a retried run does:

- a retry after a run that wrote nothing (rolled back, or crashed before committing) plans the
  same changes against the same state, so it makes the same events and writes them once;
- a retry after a run that committed plans against the new state: it has nothing to send;
- a retry after a run that wrote part of its events (an engine without transactions) plans the
  missing changes again with the same ids; any event already written is dropped as a duplicate
  by message id (the copy received first is kept, DESIGN.md);
- a re-run at the same ``at`` with *different* results gets new ids for the users whose values
  differ; its events are received later, so they decide (ties on ``timestamp`` are broken by
  ``received_at``). Because the replaced values and the held row's version are part of the id,
  even flip-flopping re-runs (1, 2, 1, 2 at the same ``at``) never reuse an id: the fourth
  event is not the second one again (which a log would drop, leaving 1 in force), and it wins.

>>> import datetime as dt
>>> from personas_warehouse.model import Audience, ComputedTrait, Space, TraitType
>>> space = Space(traits=[ComputedTrait("ltv", TraitType.NUMBER)], audiences=[Audience("vip")])
>>> at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
>>> results = ComputedResults(traits={"u1": {"ltv": 120.5}, "u2": {"ltv": None}},
...                           audiences={"vip": {"u1"}})
>>> plan = plan_sync(space, {}, results, at, clock=lambda: at)
>>> [(e.user_id, dict(e.values)) for e in plan.events]
[('u1', {'ltv': 120.5, 'vip': True})]
>>> plan.counts["vip"], plan.totals.entered
(KeyCounts(entered=1, exited=0, changed=0), 1)
>>> later = plan_sync(space, plan.states, ComputedResults(audiences={"vip": set()}),
...                   at + dt.timedelta(hours=1), clock=lambda: at)
>>> [(e.user_id, dict(e.values)) for e in later.events]
[('u1', {'vip': False})]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs

from personas_warehouse.errors import InvalidEventError, UnsupportedValueError
from personas_warehouse.model import (
    FLOAT_EXACT_INT,
    INT64_MAX,
    INT64_MIN,
    IdentifyEvent,
    Space,
    TraitType,
    UserState,
    ensure_aware,
    validate_trait_value,
)

__all__ = [
    "MESSAGE_ID_PREFIX",
    "Clock",
    "ComputedResults",
    "KeyCounts",
    "SyncPlan",
    "message_id",
    "plan_sync",
    "same_value",
    "utc_now",
]

Clock = Callable[[], dt.datetime]
"""A function returning the current time (timezone-aware)."""

MESSAGE_ID_PREFIX: Final = "personas_"
"""Every message id a sync makes starts with this (Segment's Personas ids do too)."""


def utc_now() -> dt.datetime:
    """The wall clock, timezone-aware, in UTC: the default ``received_at`` of a sync."""
    return dt.datetime.now(dt.UTC)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _check_user_id(user_id: object, where: str) -> str:
    if not isinstance(user_id, str) or not user_id:
        raise InvalidEventError(f"{where}: user ids must be non-empty strings, got {user_id!r}")
    if "\x00" in user_id:
        raise UnsupportedValueError(f"{where}: user id {user_id!r} contains a NUL byte; remove it")
    return user_id


def _freeze_traits(traits: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Mapping[str, Any]]:
    if not isinstance(traits, Mapping):
        raise InvalidEventError(
            f"ComputedResults.traits must map user id -> {{trait key: value}}, got {traits!r}"
        )
    frozen: dict[str, Mapping[str, Any]] = {}
    for user_id, values in traits.items():
        _check_user_id(user_id, "ComputedResults.traits")
        if not isinstance(values, Mapping):
            raise InvalidEventError(
                f"ComputedResults.traits[{user_id!r}] must map trait key -> value, got {values!r}"
            )
        frozen[user_id] = MappingProxyType(dict(values))
    return MappingProxyType(frozen)


def _freeze_audiences(audiences: Mapping[str, Iterable[str]]) -> Mapping[str, frozenset[str]]:
    if not isinstance(audiences, Mapping):
        raise InvalidEventError(
            "ComputedResults.audiences must map audience key -> set of member user ids, "
            f"got {audiences!r}"
        )
    frozen: dict[str, frozenset[str]] = {}
    for key, members in audiences.items():
        if isinstance(members, str | bytes) or not isinstance(members, Iterable):
            raise InvalidEventError(
                f"ComputedResults.audiences[{key!r}] must be a set of user ids (the audience's "
                f"full current member set), got {members!r}"
            )
        member_set = frozenset(members)
        for user_id in [u for u in member_set if type(u) is not str or not u or "\x00" in u]:
            _check_user_id(user_id, f"ComputedResults.audiences[{key!r}]")
        frozen[key] = member_set
    return MappingProxyType(frozen)


@attrs.frozen(slots=True)
class ComputedResults:
    """What this run computed: trait values per user, and each audience's current members.

    - ``traits``: user id -> {trait key: value}. ``None`` clears the trait. A trait key or a user
      that is not given is unchanged.
    - ``audiences``: audience key -> the audience's *full* current member set. A user who was
      in and is not in the set has exited. An audience that is not given this run is unchanged.

    Keys and values are checked against the Space when the sync is planned (an unknown key or a
    value that does not fit its trait's type is an error naming it; keys that selective sync
    excludes are skipped).

    >>> ComputedResults(audiences={"vip": ["u1", "u2", "u1"]}).audiences["vip"] == {"u1", "u2"}
    True
    """

    traits: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict, converter=_freeze_traits)
    audiences: Mapping[str, frozenset[str]] = attrs.field(factory=dict, converter=_freeze_audiences)


# --------------------------------------------------------------------------------------------
# Values: type-aware equality and a canonical form for hashing
# --------------------------------------------------------------------------------------------


def _canonical(value: Any) -> Any:
    """A JSON-able form of a value that keeps its type: ``1``, ``1.0`` and ``True`` differ."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ["b", value]
    if isinstance(value, int):
        return ["i", str(value)]
    if isinstance(value, float):
        return ["f", repr(value)]
    if isinstance(value, str):
        return ["s", value]
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return ["naive", value.isoformat()]
        return ["t", value.astimezone(dt.UTC).isoformat()]
    if isinstance(value, list | tuple):
        return ["l", [_canonical(item) for item in value]]
    if isinstance(value, Mapping):
        return ["d", sorted([str(k), _canonical(v)] for k, v in value.items())]
    return ["?", type(value).__name__, repr(value)]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def same_value(type_: TraitType | None, old: Any, new: Any) -> bool:
    """Whether ``new`` equals ``old`` as the warehouse stores a ``type_`` value.

    ``type_`` ``None`` means an audience (``True`` / ``False`` / ``None``).

    >>> same_value(TraitType.NUMBER, 1, 1.0), same_value(TraitType.NUMBER, 1, True)
    (True, False)
    >>> same_value(TraitType.JSON, {"a": 1}, {"a": True}), same_value(TraitType.JSON, [1], [1.0])
    (False, False)
    >>> same_value(TraitType.TIMESTAMP, dt.datetime(2024, 1, 1, 1, tzinfo=dt.timezone(
    ...     dt.timedelta(hours=1))), dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    True
    """
    if old is None or new is None:
        return old is new
    if type_ is None or type_ is TraitType.BOOLEAN:
        return isinstance(old, bool) and isinstance(new, bool) and old is new
    if type_ is TraitType.NUMBER:
        return _is_number(old) and _is_number(new) and float(old) == float(new)
    if type_ is TraitType.INTEGER:
        return type(old) is int and type(new) is int and old == new
    if type_ is TraitType.STRING:
        return isinstance(old, str) and isinstance(new, str) and old == new
    if type_ is TraitType.TIMESTAMP:
        if not (isinstance(old, dt.datetime) and isinstance(new, dt.datetime)):
            return False
        if old.tzinfo is None or new.tzinfo is None:
            return False
        return old == new
    # JSON: ``==`` first (C speed; False means different under any reading), then the same
    # repr proves the same types all the way down; only key order can differ otherwise
    if old != new:
        return False
    return repr(old) == repr(new) or bool(_canonical(old) == _canonical(new))


_SAME_TYPE_EQUAL: Final[Mapping[TraitType, frozenset[type]]] = MappingProxyType(
    {
        TraitType.BOOLEAN: frozenset({bool}),
        TraitType.INTEGER: frozenset({int}),
        TraitType.NUMBER: frozenset({int, float}),
        TraitType.STRING: frozenset({str}),
        TraitType.TIMESTAMP: frozenset({dt.datetime}),
        TraitType.JSON: frozenset(),
    }
)
"""Per trait type, the Python types for which ``==`` between a held value and a given value of
the *same* type is exactly :func:`same_value` (JSON documents are not: ``{"a": 1} == {"a":
True}``; held timestamps are aware, and an aware and a naive datetime are never ``==``)."""


def _fast_valid(type_: TraitType, value: Any) -> bool:
    """True when ``value`` is certainly valid and already normalised for ``type_``."""
    kind = type(value)
    if type_ is TraitType.NUMBER:
        if kind is float:
            return math.isfinite(value)
        return kind is int and -FLOAT_EXACT_INT <= value <= FLOAT_EXACT_INT
    if type_ is TraitType.INTEGER:
        return kind is int and INT64_MIN <= value <= INT64_MAX
    if type_ is TraitType.BOOLEAN:
        return kind is bool
    if type_ is TraitType.STRING:
        return kind is str and "\x00" not in value
    return False


_PLAIN_SCALARS: Final = frozenset({type(None), bool, int, float, str})
"""Types whose ``repr`` already tells value and type apart (``1``, ``1.0``, ``True``, ``'1'``)."""


def _hashable(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return value
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return ("timestamp", value.astimezone(dt.UTC).isoformat())
    text = json.dumps(_canonical(value), ensure_ascii=False, separators=(",", ":"))
    return ("document", text)


def _message_id(
    run: str,
    user_id: str,
    values: Mapping[str, Any],
    previous: Mapping[str, Any],
    version: object = None,
) -> str:
    changes = [
        (key, _hashable(values[key]), _hashable(previous.get(key))) for key in sorted(values)
    ]
    held = () if version is None else (_hashable(version),)
    payload = repr((run, user_id, changes, *held))
    digest = hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()
    return MESSAGE_ID_PREFIX + digest[:32]


def _run_text(schema: str, at: dt.datetime) -> str:
    return repr((schema, at.astimezone(dt.UTC).isoformat()))


def message_id(
    schema: str,
    user_id: str,
    at: dt.datetime,
    values: Mapping[str, Any],
    previous: Mapping[str, Any] | None = None,
) -> str:
    """The deterministic message id of a sync's event (see the module docs on retries).

    A hash of the schema, the user, ``at`` (as a UTC instant), the values with their types, and
    the values they replace (``previous``: key -> held value; a key missing is ``None``).

    >>> at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    >>> message_id("s", "u1", at, {"a": 1}) == message_id("s", "u1", at, {"a": 1})
    True
    >>> message_id("s", "u1", at, {"a": 1}) == message_id("s", "u1", at, {"a": True})
    False
    >>> message_id("s", "u1", at, {"a": 1}) == message_id("s", "u1", at, {"a": 1}, {"a": 2})
    False
    >>> message_id("s", "u1", at, {"a": 1})[:9]
    'personas_'
    """
    return _message_id(_run_text(schema, ensure_aware(at)), user_id, values, previous or {})


# --------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class KeyCounts:
    """How many users a key changed for: audience entries and exits, trait value changes."""

    entered: int = 0
    """Users who entered the audience (``True``)."""
    exited: int = 0
    """Users who exited the audience (``False``)."""
    changed: int = 0
    """Users whose trait value changed (a clear included)."""

    def __add__(self, other: KeyCounts) -> KeyCounts:
        return KeyCounts(
            self.entered + other.entered,
            self.exited + other.exited,
            self.changed + other.changed,
        )

    def as_dict(self) -> dict[str, int]:
        """``{"entered": ..., "exited": ..., "changed": ...}``."""
        return {"entered": self.entered, "exited": self.exited, "changed": self.changed}


def _to_events(events: Iterable[IdentifyEvent]) -> tuple[IdentifyEvent, ...]:
    return tuple(events)


def _to_keys(keys: Iterable[str]) -> frozenset[str]:
    return frozenset(keys)


def _freeze_counts(counts: Mapping[str, KeyCounts]) -> Mapping[str, KeyCounts]:
    return MappingProxyType(dict(counts))


def _freeze_states(states: Mapping[str, UserState]) -> Mapping[str, UserState]:
    return MappingProxyType(dict(states))


@attrs.frozen(slots=True)
class SyncPlan:
    """The changes one sync writes.

    ``events`` are the identify events (one per changed user, ordered by user id); ``states``
    the state of every changed user after the run (every synced key of the Space); ``counts``
    has every synced key of the Space, zeros included.
    """

    at: dt.datetime
    """The run's time: every event's ``timestamp``."""
    received_at: dt.datetime
    """The clock's time when the run was planned: every event's ``received_at``."""
    events: tuple[IdentifyEvent, ...] = attrs.field(converter=_to_events)
    states: Mapping[str, UserState] = attrs.field(converter=_freeze_states)
    counts: Mapping[str, KeyCounts] = attrs.field(converter=_freeze_counts)
    skipped_keys: frozenset[str] = attrs.field(default=frozenset(), converter=_to_keys)
    """Keys given in the results that selective sync excludes (not written)."""

    @property
    def is_empty(self) -> bool:
        """Nothing changed: the sync writes no event and no user."""
        return not self.events

    @property
    def users_changed(self) -> int:
        """How many users changed (one event each)."""
        return len(self.events)

    @property
    def totals(self) -> KeyCounts:
        """The counts of every key added up."""
        total = KeyCounts()
        for counts in self.counts.values():
            total = total + counts
        return total

    def counts_dict(self) -> dict[str, dict[str, int]]:
        """``counts`` as plain dicts (what the sync history stores as JSON)."""
        return {key: counts.as_dict() for key, counts in self.counts.items()}


def _state_values(state: UserState | None, keys: tuple[str, ...], traits: bool) -> dict[str, Any]:
    if state is None:
        return dict.fromkeys(keys)
    held = state.traits if traits else state.audiences
    return {key: held.get(key) for key in keys}


def plan_sync(
    space: Space,
    previous: Mapping[str, UserState],
    computed: ComputedResults,
    at: dt.datetime,
    *,
    clock: Clock | None = None,
    versions: Mapping[str, object] | None = None,
) -> SyncPlan:
    """The changes that bring ``previous`` (what the warehouse holds) to ``computed`` at ``at``.

    ``previous`` maps user id -> :class:`UserState` (a ``snapshot`` or the ``users`` rows); a
    user missing from it holds nothing, a key missing from a state is ``None``. Pure: the only
    outside input is ``clock`` (default: the wall clock in UTC), read once for ``received_at``.

    Raises :class:`InvalidEventError` for a key the Space does not have, an audience given as a
    trait (or the reverse), and a value that does not fit its trait's type; and
    :class:`InvalidTimestampError` for a naive ``at``.

    ``versions`` (optional) maps a user id to a token of the held row's version (the runner
    passes the ``received_at`` of the user's latest event); it goes into the message ids, so a
    state the user held before, reached again later, never reproduces an old event's id.
    """
    if not isinstance(computed, ComputedResults):
        raise InvalidEventError(
            f"plan_sync takes a ComputedResults, got {type(computed).__name__}; wrap your "
            "results: ComputedResults(traits=..., audiences=...)"
        )
    at = ensure_aware(at, "sync time `at`")
    received_at = ensure_aware((clock or utc_now)(), "the clock's time (received_at)")
    trait_keys = space.trait_keys
    space_audience_keys = space.audience_keys
    trait_info = {
        key: (type_, _SAME_TYPE_EQUAL[type_])
        for key, type_ in ((key, space.trait_types[key]) for key in trait_keys)
    }
    audience_keys = set(space_audience_keys)
    changes: dict[str, dict[str, Any]] = {}
    changed = dict.fromkeys(space.keys, 0)
    entered = dict.fromkeys(space.audience_keys, 0)
    exited = dict.fromkeys(space.audience_keys, 0)
    skipped: set[str] = set()
    empty: Mapping[str, Any] = {}

    for user_id, values in computed.traits.items():
        state = previous.get(user_id)
        held = state.traits if state is not None else empty
        user_changes: dict[str, Any] | None = None
        for key, given in values.items():
            info = trait_info.get(key)
            if info is None:
                _unknown_key(space, key, skipped, as_trait=True)
                continue
            type_, same_type_equal = info
            old = held.get(key)
            kind = type(given)
            if kind is type(old) and kind in same_type_equal and old == given:
                continue  # the held value, unchanged (held values were checked when written)
            value = given if _fast_valid(type_, given) else _validated(user_id, key, type_, given)
            if not same_value(type_, old, value):
                if user_changes is None:
                    user_changes = changes.setdefault(user_id, {})
                user_changes[key] = value
                changed[key] += 1

    for key, members in computed.audiences.items():
        if key not in audience_keys:
            _unknown_key(space, key, skipped, as_trait=False)
            continue
        held_in = {u for u, s in previous.items() if s.audiences.get(key) is True}
        for user_id in members - held_in:
            changes.setdefault(user_id, {})[key] = True
        for user_id in held_in - members:
            changes.setdefault(user_id, {})[key] = False
        entered[key] = len(members - held_in)
        exited[key] = len(held_in - members)

    events, states = _events_and_states(
        space, previous, changes, at=at, received_at=received_at, versions=versions or {}
    )
    counts = {
        key: KeyCounts(entered.get(key, 0), exited.get(key, 0), changed[key]) for key in space.keys
    }
    return SyncPlan(at, received_at, events, states, counts, skipped)


def _events_and_states(
    space: Space,
    previous: Mapping[str, UserState],
    changes: Mapping[str, Mapping[str, Any]],
    *,
    at: dt.datetime,
    received_at: dt.datetime,
    versions: Mapping[str, object],
) -> tuple[list[IdentifyEvent], dict[str, UserState]]:
    """One event per changed user (ordered by user id), and each changed user's new state."""
    trait_keys = space.trait_keys
    space_audience_keys = space.audience_keys
    events: list[IdentifyEvent] = []
    run = _run_text(space.schema, at)
    states: dict[str, UserState] = {}
    for user_id in sorted(changes):
        values = changes[user_id]
        state = previous.get(user_id)
        traits = _state_values(state, trait_keys, traits=True)
        audiences = _state_values(state, space_audience_keys, traits=False)
        replaced = {key: traits[key] if key in traits else audiences[key] for key in values}
        events.append(
            IdentifyEvent(
                _message_id(run, user_id, values, replaced, versions.get(user_id)),
                user_id,
                at,
                values,
                received_at,
            )
        )
        for key, value in values.items():
            if key in traits:
                traits[key] = value
            else:
                audiences[key] = value
        states[user_id] = UserState(user_id, traits, audiences)

    return events, states


def _validated(user_id: str, key: str, type_: TraitType, value: Any) -> Any:
    try:
        return validate_trait_value(key, type_, value)
    except InvalidEventError as err:
        raise type(err)(f"ComputedResults.traits[{user_id!r}]: {err}") from None


def _unknown_key(space: Space, key: str, skipped: set[str], *, as_trait: bool) -> None:
    if key in space.excluded:
        skipped.add(key)
        return
    where = "ComputedResults.traits" if as_trait else "ComputedResults.audiences"
    if as_trait and key in space.audience_keys:
        raise InvalidEventError(
            f"{where}: {key!r} is an audience, not a trait; give its full member set in "
            "ComputedResults.audiences"
        )
    if not as_trait and key in space.trait_keys:
        raise InvalidEventError(
            f"{where}: {key!r} is a trait, not an audience; give its values per user in "
            "ComputedResults.traits"
        )
    kind = "trait" if as_trait else "audience"
    known = space.trait_keys if as_trait else space.audience_keys
    raise InvalidEventError(
        f"{where}: unknown {kind} {key!r}; this space's {kind}s are {sorted(known)} "
        "(add it to the Space first)"
    )
