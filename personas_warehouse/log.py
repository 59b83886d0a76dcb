"""The identifies log in memory, and point-in-time reconstruction from it.

:class:`IdentifiesLog` holds identify events and answers DESIGN.md's question: the state of a user
(or of everyone) at any moment, optionally as the warehouse knew it then (``known_at``). Events
may be added in any order, late, and more than once; duplicates by ``message_id`` are resolved
over the whole log (the copy received earliest wins, then the earliest ``timestamp``, then the
smallest ``user_id``). Reads work on an index built lazily on the first read after an add.

>>> import datetime as dt
>>> from personas_warehouse.model import Audience, ComputedTrait, IdentifyEvent, Space, TraitType
>>> space = Space(traits=[ComputedTrait("visits", TraitType.INTEGER)], audiences=[Audience("vip")])
>>> at = lambda minute: dt.datetime(2024, 1, 1, 12, minute, tzinfo=dt.UTC)
>>> log = IdentifiesLog(space, [
...     IdentifyEvent("m1", "u1", at(0), {"visits": 1, "vip": True}),
...     IdentifyEvent("m2", "u1", at(5), {"visits": 2}),
...     IdentifyEvent("m3", "u1", at(9), {"vip": False}),
... ])
>>> log.reconstruct_state("u1", at(6))
UserState(user_id='u1', traits={'visits': 2}, audiences={'vip': True})
>>> log.reconstruct_state("u1", at(9)).audiences
{'vip': False}
>>> log.reconstruct_state("u1", at(6), known_at=at(0)).traits  # what was known at 12:00
{'visits': 1}
>>> [(c.key, c.old, c.new) for c in log.history("u1")]
[('visits', None, 1), ('vip', None, True), ('visits', 1, 2), ('vip', True, False)]

How it is stored (see ``docs/reconstruction.md``): one set of flat columns for the whole log
(timestamps and received_at as integer microseconds in ``array('q')``, message ids as UTF-8 in
one ``bytearray``, keys interned as small integer codes, trait values in one list, audience
values folded into their key code). Each user's events sit in one contiguous, sorted range, so
a state at ``ts`` is one bisection plus two C-level dict updates over the user's value pairs up
to that point. The first index of an empty log is built in bulk (by the optional C speedups,
``personas_warehouse._speedups``, where they are built; otherwise by C-level passes over whole
columns, with numpy where installed); an open-addressing hash table over the message ids,
which only adds to a non-empty log need, is built by the first of them. Users touched by later
adds are re-sorted and appended at the end; the abandoned ranges are compacted away when they
outweigh the live ones.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import cache
from itertools import accumulate, chain, compress, cycle, islice, repeat
from operator import (
    add,
    and_,
    attrgetter,
    eq,
    floordiv,
    ge,
    is_,
    is_not,
    itemgetter,
    le,
    lshift,
    mul,
    ne,
    not_,
    or_,
    rshift,
    sub,
)
from types import MappingProxyType, ModuleType
from typing import Any, Final, cast

import attrs

from personas_warehouse.errors import (
    InvalidEventError,
    InvalidSpaceError,
    PersonasWarehouseError,
)
from personas_warehouse.model import (
    FLOAT_EXACT_INT,
    INT64_MAX,
    INT64_MIN,
    IdentifyEvent,
    Space,
    TraitType,
    UserState,
    ensure_aware,
)

__all__ = [
    "Change",
    "IdentifiesLog",
    "MembershipInterval",
    "reconstruct_state",
]

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_US: Final = dt.timedelta(microseconds=1)
_UTC_ZONE: Final = dt.UTC
_SLOT_BITS: Final = 40  # hash table entry: fingerprint << 40 | (slot + 1)
_SLOT_MASK: Final = (1 << _SLOT_BITS) - 1
_FINGERPRINT_MASK: Final = (1 << 22) - 1
_INDEX: Final = "I"  # 4-byte unsigned: event, pair, slot and user numbers (< 2**32)
_MAX_EVENTS: Final = 2**32 - 1

_MESSAGE_ID = attrgetter("message_id")
_USER_ID = attrgetter("user_id")
_TIMESTAMP = attrgetter("timestamp")
_RECEIVED_AT = attrgetter("received_at")
_VALUES = attrgetter("values")
_PROXY_VALUES = MappingProxyType.values
_TZINFO = attrgetter("tzinfo")
_FIRST = itemgetter(0)

# The event slots the compiled flatten reads, and the value types of its check table, in the
# order _speedups.c numbers them (TAG_NONE ... TAG_DATETIME).
_EVENT_SLOTS: Final = tuple(
    IdentifyEvent.__dict__[name]
    for name in ("message_id", "user_id", "timestamp", "received_at", "values")
)
_SPEEDUP_TYPES: Final[tuple[type, ...]] = (type(None), bool, int, float, str, dt.datetime)


def _load_speedups() -> ModuleType | None:
    """The optional C speedups (built by setup.py where a compiler is present), unless the
    environment variable ``PERSONAS_WAREHOUSE_SPEEDUPS`` is ``0``."""
    if os.environ.get("PERSONAS_WAREHOUSE_SPEEDUPS", "1").strip() == "0":
        return None
    try:
        # By name: a module compiled from C, which the import layering check cannot read.
        return importlib.import_module("personas_warehouse._speedups")
    except ImportError:
        return None


_SPEEDUPS = _load_speedups()  # None: the Python code runs (tests set it to None to compare)


# Fast UserState construction: the slot descriptors of the frozen attrs class, set directly.
# The result is an ordinary UserState (same class, same fields), so it compares equal to one
# made by its __init__.
_new_object = object.__new__
_set_user_id = UserState.__dict__["user_id"].__set__
_set_traits = UserState.__dict__["traits"].__set__
_set_audiences = UserState.__dict__["audiences"].__set__
if _SPEEDUPS is not None:  # the compiled fold makes UserStates the same way
    _SPEEDUPS.use_state(
        UserState, tuple(UserState.__dict__[name] for name in ("user_id", "traits", "audiences"))
    )


def _user_state(user_id: str, traits: dict[str, Any], audiences: dict[str, Any]) -> UserState:
    state: UserState = _new_object(UserState)
    _set_user_id(state, user_id)
    _set_traits(state, traits)
    _set_audiences(state, audiences)
    return state


def _micros_each(moments: Iterable[dt.datetime]) -> Iterator[int]:
    """Microseconds since the epoch of each aware datetime (checked by the caller), in C."""
    return map(floordiv, map(sub, moments, repeat(_EPOCH)), repeat(_ONE_US))


def _micros(value: Any, what: str) -> int:
    """Microseconds since the epoch of an aware datetime; naive or non-datetime is an error."""
    if value.__class__ is dt.datetime and value.tzinfo is dt.UTC:
        return (value - _EPOCH) // _ONE_US
    return (ensure_aware(value, what) - _EPOCH) // _ONE_US


def _datetime(micros: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=micros)


def _check_user_id(user_id: object) -> str:
    if not isinstance(user_id, str):
        raise InvalidEventError(f"user_id must be a string, got {user_id!r}")
    return user_id


# --------------------------------------------------------------------------------------------
# Records returned by the history views
# --------------------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Change:
    """One key of one user changing value: what the history of a user is made of.

    ``old`` is the value before the event (``None`` when the key had none), ``new`` the value
    after. An event that sets a key to the value it already has is not a change (a value is the
    same when it has the same type and compares equal, so ``1`` then ``1.0`` is a change, as
    the reconstructed state changes).
    """

    user_id: str
    timestamp: dt.datetime
    received_at: dt.datetime
    message_id: str
    key: str
    old: Any
    new: Any


@attrs.frozen(slots=True)
class MembershipInterval:
    """A stretch of time a user spent in an audience: ``[entered_at, exited_at)``.

    ``exited_at`` is ``None`` while the user is still in. An exit with no earlier entry (a log
    that starts mid-history) makes no interval: the user was never seen in the audience.
    """

    user_id: str
    audience: str
    entered_at: dt.datetime
    exited_at: dt.datetime | None

    def contains(self, ts: dt.datetime) -> bool:
        """Whether the user was in the audience at ``ts`` (inclusive)."""
        ts = ensure_aware(ts, "ts")
        return self.entered_at <= ts and (self.exited_at is None or ts < self.exited_at)


# --------------------------------------------------------------------------------------------
# The Space's keys, precomputed for the hot loops
# --------------------------------------------------------------------------------------------

# What is still to check about a value of a known (key, type), in bulk, after the type matched.
_OK: Final = 0
_FINITE: Final = 1
_INT53: Final = 2
_INT64: Final = 3
_NO_NUL: Final = 4
_UTC: Final = 5
_CHECKED_TYPE: Final[dict[int, type]] = {
    _FINITE: float,
    _INT53: int,
    _INT64: int,
    _NO_NUL: str,
    _UTC: dt.datetime,
}


class _Keys:
    """The synced keys of a Space as integer codes, templates and fast validation tables."""

    __slots__ = (
        "audience_names",
        "audience_pairs",
        "audience_template",
        "checks",
        "code",
        "code_type",
        "compiled_checks",
        "space",
        "trait_count",
        "trait_names",
        "trait_template",
    )

    def __init__(self, space: Space) -> None:
        self.space = space
        self.trait_names: tuple[str, ...] = space.trait_keys
        self.audience_names: tuple[str, ...] = space.audience_keys
        self.trait_count = len(self.trait_names)
        if len(self.trait_names) + 2 * len(self.audience_names) >= 1 << 32:
            raise InvalidSpaceError("a space with over two billion keys cannot be indexed")
        self.code: dict[str, int] = {
            key: code for code, key in enumerate(self.trait_names + self.audience_names)
        }
        self.trait_template: dict[str, Any] = dict.fromkeys(self.trait_names)
        self.audience_template: dict[str, Any] = dict.fromkeys(self.audience_names)
        # audience value code = 2 * audience index + value -> the (key, value) pair it stands for
        self.audience_pairs: tuple[tuple[str, bool], ...] = tuple(
            (key, value) for key in self.audience_names for value in (False, True)
        )
        types = space.trait_types
        checks: dict[tuple[int, type], int] = {}
        for code, key in enumerate(self.trait_names):
            checks[(code, type(None))] = _OK
            kind = types[key]
            if kind is TraitType.BOOLEAN:
                checks[(code, bool)] = _OK
            elif kind is TraitType.INTEGER:
                checks[(code, int)] = _INT64
            elif kind is TraitType.NUMBER:
                checks[(code, float)] = _FINITE
                checks[(code, int)] = _INT53
            elif kind is TraitType.STRING:
                checks[(code, str)] = _NO_NUL
            elif kind is TraitType.TIMESTAMP:
                checks[(code, dt.datetime)] = _UTC
            # JSON values take the full check in Space.validate_event.
        for code in range(self.trait_count, len(self.code)):
            checks[(code, bool)] = _OK
        self.checks = checks
        self.code_type = "H" if len(self.code) * 2 < 1 << 16 else "I"
        # The same table for the compiled flatten: byte code * 6 + type tag = check + 1.
        table = bytearray(len(self.code) * len(_SPEEDUP_TYPES))
        for (code, value_type), check in checks.items():
            table[code * len(_SPEEDUP_TYPES) + _SPEEDUP_TYPES.index(value_type)] = check + 1
        self.compiled_checks = bytes(table)

    def columns(self, events: Iterable[IdentifyEvent], *, checked: bool = False) -> _Chunk:
        """Events as flat columns, every value checked against the Space.

        Each field is read for all events in one C-level pass (``map`` over an attribute
        getter), and values are checked in bulk per (key, type) combination; when anything is
        unusual (a type the fast checks do not cover, a JSON value, a value that fails) the
        batch goes through :meth:`Space.validate_event` one event at a time, which raises the
        error naming the event and key, or normalises the value.
        """
        batch = events if isinstance(events, list) else list(events)
        compiled = _SPEEDUPS
        if compiled is not None:
            flat = compiled.flatten(
                batch, IdentifyEvent, _EVENT_SLOTS, self.code, self.compiled_checks
            )
            if flat is not None:
                mids, uids, ts_bytes, recv_bytes, codes_bytes, pair_values, bound = flat
                ts_packed = array("q", ts_bytes)
                return _Chunk(
                    message_id=mids,
                    user_id=uids,
                    ts=ts_packed,
                    recv=ts_packed if recv_bytes is None else array("q", recv_bytes),
                    code=array("q", codes_bytes),
                    value=pair_values,
                    bound=array("q", bound),
                )
        if set(map(type, batch)) - {IdentifyEvent}:
            return self.columns(self._validate_each(batch), checked=True)
        values_maps = list(map(_VALUES, batch))
        try:
            values = list(chain.from_iterable(map(_PROXY_VALUES, values_maps)))
        except TypeError:  # not a read-only mapping: made around the constructor
            return self.columns(self._validate_each(batch), checked=True)
        names = list(chain.from_iterable(values_maps))
        codes = list(map(self.code.get, names))
        del names
        if not checked and not self._values_pass(codes, values):
            return self.columns(self._validate_each(batch), checked=True)
        known = cast("list[int]", codes)  # every key is known once the values passed
        ts_objects = list(map(_TIMESTAMP, batch))
        ts = list(_micros_each(ts_objects))
        recv_objects = list(map(_RECEIVED_AT, batch))
        late = list(map(is_not, recv_objects, ts_objects))
        if any(late):  # only the events whose received_at is another object are converted
            recv = ts.copy()
            rows = list(compress(range(len(batch)), late))
            _consume(map(recv.__setitem__, rows, _micros_each(map(recv_objects.__getitem__, rows))))
        else:
            recv = ts
        del ts_objects, recv_objects, late
        return _Chunk(
            message_id=list(map(_MESSAGE_ID, batch)),
            user_id=list(map(_USER_ID, batch)),
            ts=ts,
            recv=recv,
            code=known,
            value=values,
            bound=list(accumulate(map(len, values_maps), initial=0)),
        )

    def columns_of(self, given: _Columns) -> _Chunk | None:
        """Events given column by column (see :meth:`IdentifiesLog.from_columns`) as flat
        columns, or ``None`` when a bulk check cannot vouch for every cell (the caller then
        makes the events, whose validation names the culprit).

        The pairs are gathered a column at a time (a C-level scan for the non-NULL cells of
        each key) and put in event order by a counting pass, so the work follows the values
        present, not rows x keys.
        """
        message_id, user_id, timestamp, received_at = (
            given.message_id,
            given.user_id,
            given.timestamp,
            given.received_at,
        )
        values, cleared = given.values, given.cleared
        count = len(message_id)
        if not (_plain_ids(message_id) and _plain_ids(user_id)):
            return None
        ts = _utc_micros(timestamp)
        recv = ts if received_at is timestamp or ts is None else _utc_micros(received_at)
        if ts is None or recv is None:
            return None
        if any(key not in self.code for key in values):
            return None
        # (event, code, value) of every pair, a key at a time; clears first
        pair_rows: list[Sequence[int]] = []
        pair_codes: list[int] = []
        pair_values: list[list[Any]] = []
        cleared_at: dict[int, set[int]] = {}
        compiled = _SPEEDUPS
        grouped = (
            None
            if compiled is None or cleared is None
            else compiled.cleared_rows(cleared, self.code, len(self.code))
        )
        if grouped is not None:
            for code, packed in grouped.items():
                cleared_rows = array("q", packed)
                cleared_at[code] = set(cleared_rows)
                pair_rows.append(cleared_rows)
                pair_codes.append(code)
                pair_values.append([None] * len(cleared_rows))
        elif cleared is not None:
            for row in compress(range(count), cleared):
                given_names = cleared[row]
                if isinstance(given_names, str):
                    return None
                names = list(given_names)  # type: ignore[arg-type]
                if not all(name in self.code for name in names):
                    return None
                for name in names:
                    cleared_at.setdefault(self.code[name], set()).add(row)
            for code, where in cleared_at.items():
                pair_rows.append(sorted(where))
                pair_codes.append(code)
                pair_values.append([None] * len(where))
        for key, column in values.items():
            code = self.code[key]
            rows, cells = _present(column)
            taken = cleared_at.get(code)
            if taken:  # a clear of the key in the same event wins over a stored value
                keep = [row not in taken for row in rows]
                rows, cells = list(compress(rows, keep)), list(compress(cells, keep))
            pair_rows.append(rows)
            pair_codes.append(code)
            pair_values.append(cells)
        codes, flat, bound = _in_event_order(count, pair_rows, pair_codes, pair_values)
        del pair_rows, pair_values
        if not self._values_pass(codes, flat):
            return None
        return _Chunk(
            message_id=list(message_id),
            user_id=list(user_id),
            ts=ts,
            recv=recv,
            code=codes,
            value=flat,
            bound=bound,
        )

    def split(
        self, codes: Sequence[int], values: list[Any], bound: Sequence[int]
    ) -> tuple[list[int], list[Any], list[int], list[int], list[int]]:
        """Pairs (in event order, event i's at ``[bound[i], bound[i + 1])``) split into trait
        codes and values, audience value codes, and each event's trait and audience bounds."""
        is_trait = list(map(self.trait_count.__gt__, codes))
        is_audience = list(map(not_, is_trait))
        audience_index = map(sub, compress(codes, is_audience), repeat(self.trait_count))
        trait_cumulative = list(accumulate(is_trait, initial=0))
        t_bound = list(map(trait_cumulative.__getitem__, bound))
        return (
            list(compress(codes, is_trait)),
            list(compress(values, is_trait)),
            list(map(add, map(mul, audience_index, repeat(2)), compress(values, is_audience))),
            t_bound,
            list(map(sub, bound, t_bound)),
        )

    def _validate_each(self, batch: list[Any]) -> list[IdentifyEvent]:
        checked = []
        for event in batch:
            if not isinstance(event, IdentifyEvent):
                raise InvalidEventError(
                    f"expected IdentifyEvent values, got {event!r} ({type(event).__name__}); "
                    "build events with personas_warehouse.IdentifyEvent(...)"
                )
            checked.append(self.space.validate_event(event))
        return checked

    def _values_pass(self, codes: Sequence[int | None], values: list[Any]) -> bool:
        """True when every value surely passes Space.validate_event unchanged (bulk, in C).

        Conservative: a value it cannot vouch for (say an integer over 2**53 in a batch that
        also has NUMBER traits) sends the batch through the full per-event check.
        """
        compiled = _SPEEDUPS
        if compiled is not None and isinstance(codes, array) and codes.typecode == "q":
            return bool(compiled.check_pairs(codes, values, self.compiled_checks))
        types = list(map(type, values))
        got = set(map(self.checks.get, set(zip(codes, types, strict=True))))  # type: ignore[arg-type]
        if None in got:
            return False
        found = cast("set[int]", got)
        for check in found - {_OK}:
            if check == _INT64 and _INT53 in found:
                continue  # the tighter bound below covers every int
            selected = list(compress(values, map(is_, types, repeat(_CHECKED_TYPE[check]))))
            if check == _FINITE:
                if not _all_finite(selected):
                    return False
            elif check == _INT53:
                if max(selected) > FLOAT_EXACT_INT or min(selected) < -FLOAT_EXACT_INT:
                    return False
            elif check == _INT64:
                if max(selected) > INT64_MAX or min(selected) < INT64_MIN:
                    return False
            elif check == _NO_NUL:
                if "\x00" in "".join(selected):
                    return False
            elif check == _UTC and not all(map(is_, map(_TZINFO, selected), repeat(dt.UTC))):
                return False
        return True


def _plain_ids(ids: Sequence[Any]) -> bool:
    """Every id a non-empty ``str`` without NUL (what ``IdentifyEvent`` accepts), checked in C."""
    return set(map(type, ids)) <= {str} and all(ids) and "\x00" not in "".join(ids)


def _aware(moments: Sequence[Any]) -> bool:
    """Every moment a ``datetime`` with a UTC offset, checked in C."""
    return set(map(type, moments)) <= {dt.datetime} and None not in set(
        map(dt.datetime.utcoffset, moments)
    )


def _utc_micros(moments: Sequence[Any]) -> Sequence[int] | None:
    """Epoch microseconds of aware datetimes, or ``None`` if one is not (in C where every one
    is a ``datetime`` in UTC, as connections return them)."""
    compiled = _SPEEDUPS
    if compiled is not None:
        packed = compiled.utc_micros(moments)
        if packed is not None:
            return array("q", packed)
    return list(_micros_each(moments)) if _aware(moments) else None


def _present(column: Sequence[Any]) -> tuple[Sequence[int], list[Any]]:
    """The rows whose cell is not ``None``, and those cells (one C pass)."""
    compiled = _SPEEDUPS
    found = None if compiled is None else compiled.present(column)
    if found is not None:
        return array("q", found[0]), found[1]
    rows = list(compress(range(len(column)), map(is_not, column, repeat(None))))
    return rows, list(map(column.__getitem__, rows))


def _in_event_order(
    count: int, rows: list[Sequence[int]], codes: list[int], values: list[list[Any]]
) -> tuple[Sequence[int], list[Any], Sequence[int]]:
    """Pairs given a key at a time in event order: in C, with numpy, or in Python."""
    compiled = _SPEEDUPS
    if compiled is not None:
        code_bytes, flat, bound = compiled.in_event_order(
            count, [_packed(some) for some in rows], codes, values
        )
        return array("q", code_bytes), flat, array("q", bound)
    order = _in_event_order_numpy if _accelerated() else _in_event_order_python
    return order(count, rows, codes, values)


def _in_event_order_python(
    count: int, rows: list[Sequence[int]], codes: list[int], values: list[list[Any]]
) -> tuple[list[int], list[Any], list[int]]:
    """Pairs given a key at a time (``rows[j]``: the events carrying key ``codes[j]``, with
    ``values[j]``) as flat codes and values in event order, and each event's bound."""
    counts = [0] * count
    for some in rows:
        for row in some:
            counts[row] += 1
    bound = list(accumulate(counts, initial=0))
    free = bound[:-1]
    flat_codes: list[int] = [0] * bound[-1]
    flat: list[Any] = [None] * bound[-1]
    for some, code, cells in zip(rows, codes, values, strict=True):
        for row, cell in zip(some, cells, strict=True):
            at = free[row]
            flat_codes[at] = code
            flat[at] = cell
            free[row] = at + 1
    return flat_codes, flat, bound


def _in_event_order_numpy(
    count: int, rows: list[Sequence[int]], codes: list[int], values: list[list[Any]]
) -> tuple[list[int], list[Any], list[int]]:
    """:func:`_in_event_order_python` with one stable ``argsort`` (the same result)."""
    import numpy as np  # noqa: PLC0415 (optional: the fast extra)

    lengths = list(map(len, rows))
    total = sum(lengths)
    by_row = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=total)
    order = np.argsort(by_row, kind="stable")
    flat_codes = np.repeat(np.asarray(codes, dtype=np.int64), lengths)[order].tolist()
    cells = list(chain.from_iterable(values))
    flat = list(map(cells.__getitem__, order.tolist()))
    bound = [0, *np.cumsum(np.bincount(by_row, minlength=count)).tolist()]
    return flat_codes, flat, bound


@attrs.frozen
class _Columns:
    """The columns given to :meth:`IdentifiesLog.from_columns` (``received_at`` filled in)."""

    message_id: Sequence[Any]
    user_id: Sequence[Any]
    timestamp: Sequence[Any]
    received_at: Sequence[Any]
    values: Mapping[str, Sequence[Any]]
    cleared: Sequence[Iterable[str] | None] | None


def _events_of_columns(given: _Columns) -> list[IdentifyEvent]:
    """The events of :meth:`IdentifiesLog.from_columns`' columns, one object each."""
    values, cleared = given.values, given.cleared
    message_id, user_id = given.message_id, given.user_id
    timestamp, received_at = given.timestamp, given.received_at
    keys = list(values)
    rows = zip(*values.values(), strict=True) if keys else repeat(())
    events = []
    for index, (mid, uid, at, received, row) in enumerate(
        zip(message_id, user_id, timestamp, received_at, rows, strict=False)
    ):
        carried = dict(compress(zip(keys, row, strict=True), map(is_not, row, repeat(None))))
        if cleared is not None and cleared[index]:
            if isinstance(cleared[index], str):
                raise InvalidEventError(
                    f"event {mid!r}: cleared must list keys, got the string {cleared[index]!r}"
                )
            carried.update(dict.fromkeys(cleared[index]))  # type: ignore[arg-type]
        events.append(IdentifyEvent(mid, uid, at, carried, received_at=received))
    return events


def _all_finite(values: list[float]) -> bool:
    total = sum(map(abs, values))
    return total < float("inf") and total == total  # noqa: PLR0124 (NaN is not equal to itself)


# --------------------------------------------------------------------------------------------
# A batch of events to place: flat columns, ready to sort
# --------------------------------------------------------------------------------------------


@attrs.define(slots=True)
class _Chunk:
    """Added events not yet indexed, as flat columns (event i's (key code, value) pairs are
    at ``[bound[i], bound[i + 1])`` of ``code`` and ``value``)."""

    message_id: list[str]
    user_id: list[str]
    ts: Sequence[int]
    recv: Sequence[int]
    code: Sequence[int]
    value: list[Any]
    bound: Sequence[int]


def _int_array() -> array[int]:
    return array("q")


@attrs.define(slots=True)
class _Batch:
    """Rows to place in the log (one per event), with their value pairs."""

    user: array[int] = attrs.field(factory=_int_array)
    ts: array[int] = attrs.field(factory=_int_array)
    recv: array[int] = attrs.field(factory=_int_array)
    slot: array[int] = attrs.field(factory=_int_array)
    t_start: array[int] = attrs.field(factory=_int_array)
    t_end: array[int] = attrs.field(factory=_int_array)
    a_start: array[int] = attrs.field(factory=_int_array)
    a_end: array[int] = attrs.field(factory=_int_array)
    t_code: array[int] = attrs.field(factory=_int_array)
    t_value: list[Any] = attrs.field(factory=list)
    a_code: array[int] = attrs.field(factory=_int_array)


# --------------------------------------------------------------------------------------------
# The log
# --------------------------------------------------------------------------------------------


class IdentifiesLog:
    """Identify events of one Space, indexed for point-in-time reconstruction.

    Events are validated against the Space when added (a batch with one invalid event adds
    nothing). Duplicates by ``message_id`` follow DESIGN.md over the whole log; ``len(log)`` is
    the number of distinct message ids. The log keeps compact columns, not the event objects.

    >>> import datetime as dt
    >>> from personas_warehouse.model import Audience, IdentifyEvent, Space
    >>> at = lambda hour: dt.datetime(2024, 1, 1, hour, tzinfo=dt.UTC)
    >>> log = IdentifiesLog(Space(audiences=[Audience("vip")]))
    >>> log.extend([IdentifyEvent("m1", "u1", at(1), {"vip": True}),
    ...             IdentifyEvent("m2", "u2", at(2), {"vip": True}),
    ...             IdentifyEvent("m3", "u1", at(3), {"vip": False}),
    ...             IdentifyEvent("m3", "u1", at(3), {"vip": False})])  # sent twice
    >>> len(log), log.users()
    (3, ['u1', 'u2'])
    >>> sorted(log.snapshot(at(2)))
    ['u1', 'u2']
    >>> sorted(log.members("vip", at(2))), sorted(log.members("vip", at(3)))
    (['u1', 'u2'], ['u2'])
    >>> [(i.user_id, i.entered_at.hour, i.exited_at and i.exited_at.hour)
    ...  for i in log.membership_intervals("vip")]
    [('u1', 1, 3), ('u2', 2, None)]
    >>> [size for _, size in log.audience_size("vip", [at(0), at(2), at(3)])]
    [0, 2, 1]
    >>> [e.message_id for e in log.events()]
    ['m1', 'm2', 'm3']
    """

    __slots__ = (
        "_a_code",
        "_a_pair",
        "_blob",
        "_e_recv",
        "_e_slot",
        "_e_ts",
        "_ends",
        "_keys",
        "_m_off",
        "_m_user",
        "_pending",
        "_t_code",
        "_t_key",
        "_t_value",
        "_table",
        "_u_ids",
        "_u_range",
        "_users",
    )

    def __init__(self, space: Space, events: Iterable[IdentifyEvent] = ()) -> None:
        if not isinstance(space, Space):
            raise InvalidSpaceError(
                f"IdentifiesLog needs a personas_warehouse.Space, got {space!r}"
            )
        self._keys = _Keys(space)
        # Message ids: UTF-8 bytes of slot i at _blob[_m_off[i]:_m_off[i + 1]]; the user whose
        # copy won; an open-addressing hash table of fingerprint << 40 | (slot + 1).
        self._blob = bytearray()
        self._m_off: array[int] = array("q", [0])
        self._m_user: array[int] = array(_INDEX)
        self._table: array[int] | None = None  # built on the first add to a non-empty log
        # Users: id -> number; each number's live range [start, end) of event positions.
        self._users: dict[str, int] = {}
        self._u_ids: list[str] = []
        self._u_range: array[int] = array(_INDEX)  # user u: [_u_range[2u], _u_range[2u + 1])
        # Events, grouped by user, sorted by (timestamp, received_at, message_id) in a range.
        # Event p's trait pairs are [_ends[2p], _ends[2p + 2]), its audience pairs
        # [_ends[2p + 1], _ends[2p + 3]): interleaved, so one cache line serves both.
        self._e_ts: array[int] = array("q")
        self._e_recv: array[int] = array("q")
        self._e_slot: array[int] = array(_INDEX)
        self._ends: array[int] = array(_INDEX, [0, 0])
        self._t_code: array[int] = array(self._keys.code_type)
        self._t_value: list[Any] = []
        self._a_code: array[int] = array(self._keys.code_type)
        # The same pairs as the objects the fold puts in the state dicts, kept in step with
        # the codes (:meth:`_sync_pairs`): the trait key of each trait pair, the (key, value)
        # tuple of each audience pair. 8 bytes a pair; they spare reconstruct_state and
        # snapshot a lookup per pair (a third of reconstruct_state's time).
        self._t_key: list[str] = []
        self._a_pair: list[tuple[str, bool]] = []
        self._pending: list[_Chunk] = []
        self.extend(events)

    # ---------------------------------------------------------------- adding events

    @property
    def space(self) -> Space:
        """The Space the events belong to."""
        return self._keys.space

    def add(self, event: IdentifyEvent) -> None:
        """Add one event (validated against the Space)."""
        self.extend((event,))

    def extend(self, events: Iterable[IdentifyEvent]) -> None:
        """Add events, in any order (validated first: one invalid event adds none)."""
        chunk = self._keys.columns(events)
        if chunk.message_id:
            self._pending.append(chunk)

    @classmethod
    def from_columns(
        cls,
        space: Space,
        *,
        message_id: Sequence[str],
        user_id: Sequence[str],
        timestamp: Sequence[dt.datetime],
        received_at: Sequence[dt.datetime] | None = None,
        values: Mapping[str, Sequence[Any]] | None = None,
        cleared: Sequence[Iterable[str] | None] | None = None,
    ) -> IdentifiesLog:
        """A log of events given column by column, as a warehouse's ``identifies`` holds them:
        event ``i`` is ``message_id[i]``, ``user_id[i]``, ``timestamp[i]``, ``received_at[i]``
        (default: the timestamp), and carries key ``k`` when ``values[k][i]`` is not ``None``,
        or, as an explicit clear, when ``k`` is in ``cleared[i]``.

        The same log as ``IdentifiesLog(space, events)`` with the same events, validated the
        same way (an invalid cell is reported as the event and key it belongs to), without
        making the event objects: for loaders that hold columns.

        >>> import datetime as dt
        >>> from personas_warehouse.model import Audience, ComputedTrait, Space
        >>> at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        >>> space = Space(traits=[ComputedTrait("plan")], audiences=[Audience("vip")])
        >>> log = IdentifiesLog.from_columns(
        ...     space, message_id=["m1", "m2"], user_id=["u", "u"], timestamp=[at, at],
        ...     values={"vip": [True, None], "plan": ["pro", None]}, cleared=[None, ["plan"]])
        >>> [dict(e.values) for e in log.events("u")]
        [{'plan': 'pro', 'vip': True}, {'plan': None}]
        """
        log = cls(space)
        received = timestamp if received_at is None else received_at
        columns = dict(values or {})
        count = len(message_id)
        lengths = {len(user_id), len(timestamp), len(received), *map(len, columns.values())}
        if cleared is not None:
            lengths.add(len(cleared))
        if lengths - {count}:
            raise InvalidEventError(
                f"from_columns needs every column as long as message_id ({count} events); "
                f"got lengths {sorted(lengths | {count})}"
            )
        given = _Columns(message_id, user_id, timestamp, received, columns, cleared)
        chunk = log._keys.columns_of(given)
        if chunk is None:  # something the bulk checks cannot vouch for: check event by event
            log.extend(_events_of_columns(given))
        elif chunk.message_id:
            log._pending.append(chunk)
        return log

    def __len__(self) -> int:
        """The number of distinct message ids."""
        self._index()
        return len(self._m_off) - 1

    def __getstate__(self) -> dict[str, Any]:
        # str hashes differ between processes: the hash table is rebuilt when unpickled.
        self._index()
        derived = {"_table", "_t_key", "_a_pair"}
        return {name: getattr(self, name) for name in self.__slots__ if name not in derived}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        self._table = None
        self._t_key, self._a_pair = [], []
        self._sync_pairs()

    def __repr__(self) -> str:
        self._index()
        ranges = self._u_range
        users = sum(1 for s, e in zip(ranges[0::2], ranges[1::2], strict=True) if e > s)
        return f"<IdentifiesLog: {len(self)} events, {users} users>"

    # ---------------------------------------------------------------- indexing

    def _index(self) -> None:
        """Fold pending events in: dedupe, then (re)place every user they touch."""
        if not self._pending:
            return
        chunk = _concatenate(self._pending)
        self._pending = []
        if len(self._e_ts) + len(chunk.ts) >= _MAX_EVENTS or (
            len(self._t_code) + len(self._a_code) + len(chunk.code) >= _MAX_EVENTS
        ):
            raise PersonasWarehouseError(
                f"an IdentifiesLog holds at most {_MAX_EVENTS - 1:,} events and values; for a "
                "log this size, ask the warehouse (personas_warehouse.as_of_query)"
            )
        if len(self._m_off) == 1:  # an empty log: index in bulk
            self._build_fresh(chunk)
        else:
            self._add_to_built(chunk)
        self._sync_pairs()

    def _sync_pairs(self) -> None:
        """Bring ``_t_key`` / ``_a_pair`` in step with the codes (which only grow between
        rebuilds; a rebuild empties them first)."""
        keys = self._keys
        done = len(self._t_key)
        if done < len(self._t_code):
            self._t_key.extend(map(keys.trait_names.__getitem__, self._t_code[done:]))
        done = len(self._a_pair)
        if done < len(self._a_code):
            self._a_pair.extend(map(keys.audience_pairs.__getitem__, self._a_code[done:]))

    def _add_to_built(self, chunk: _Chunk) -> None:
        """Fold pending events into a built log: dedupe against it, re-place touched users."""
        self._ensure_table()
        uids = chunk.user_id
        count = len(uids)
        alive, row_slot, new_slot_rows, taken = self._dedupe(
            chunk.message_id, uids, chunk.ts, chunk.recv
        )
        chunk.message_id = []

        # User numbers (new users get the next numbers, in order of first appearance).
        users = self._users
        rows = list(compress(range(count), alive))
        fresh = [u for u in dict.fromkeys(map(uids.__getitem__, rows)) if u not in users]
        first = len(self._u_ids)
        users.update(zip(fresh, range(first, first + len(fresh)), strict=True))
        self._u_ids.extend(fresh)
        self._u_range.extend(repeat(0, 2 * len(fresh)))
        # None for rows that lost their message id to another copy (never read).
        row_user = cast("list[int]", list(map(users.get, uids)))

        # Users whose placed events must be merged: touched by a new event, or losing one.
        touched = set(map(row_user.__getitem__, rows))
        losers: set[int] = set()
        for slot, row in taken.items():
            touched.add(self._m_user[slot])
            losers.add(slot)
            self._m_user[slot] = row_user[row]
        self._m_user.extend(map(row_user.__getitem__, new_slot_rows))

        # Every row goes into the batch as it is (sequential copies); only live rows are placed.
        t_code, t_value, a_code, t_bound, a_bound = self._keys.split(
            chunk.code, chunk.value, chunk.bound
        )
        batch = _Batch(
            user=array("q", map(users.get, uids, repeat(0))),
            ts=array("q", chunk.ts),
            recv=array("q", chunk.recv),
            slot=array("q", row_slot),
            t_start=array("q", islice(t_bound, count)),
            t_end=array("q", islice(t_bound, 1, None)),
            a_start=array("q", islice(a_bound, count)),
            a_end=array("q", islice(a_bound, 1, None)),
            t_code=array(self._keys.code_type, t_code),
            t_value=t_value,
            a_code=array(self._keys.code_type, a_code),
        )
        del chunk, row_slot, row_user, t_code, t_value, a_code, t_bound, a_bound
        ranges = self._u_range
        placed = [u for u in touched if ranges[2 * u + 1] > ranges[2 * u]]
        for user in placed:
            self._copy_out(user, batch, losers)
        rows.extend(range(count, len(batch.user)))  # the copied-out rows are all live
        self._place(batch, placed, rows)
        if len(self._e_ts) > 2 * (len(self._m_off) - 1) + 1024:
            self._compact()

    def _build_fresh(self, chunk: _Chunk) -> None:
        """Index the first events of an empty log, in bulk (no hash table).

        Where the C speedups are built, :func:`_layout_compiled` does it all in one call.
        Otherwise copies are dropped with one dict (:func:`_drop_copies`) and the rest is laid
        out by :func:`_layout_numpy` where numpy is installed (sorts and gathers in C, several
        times faster) and by :func:`_layout_python` otherwise; all give the same arrays. Message ids
        keep their arrival order (a message id's slot is its live row number, so the buffer
        is one join). The hash table that later adds need is built on the first of them
        (:meth:`_ensure_table`).
        """
        compiled = _layout_compiled(chunk, self._keys)
        if compiled is not None:
            self._adopt(*compiled)
            return
        mids, uids, ts, recv, pair_start, pair_count = _drop_copies(chunk)
        build = _layout_numpy if _accelerated() else _layout_python
        layout = build(
            mids=mids,
            uids=uids,
            ts=ts,
            recv=recv,
            pair_start=pair_start,
            pair_count=pair_count,
            codes_all=chunk.code,
            values_all=chunk.value,
            keys=self._keys,
        )
        del uids, ts, recv, pair_start, pair_count, chunk
        self._adopt(layout, *_message_buffer(mids))

    def _adopt(self, layout: _Layout, blob: bytearray, m_off: array[int]) -> None:
        """Take a fresh layout's columns, and the message ids' buffer and offsets."""
        self._users, self._u_ids, self._u_range = layout.users, layout.u_ids, layout.u_range
        self._m_user, self._e_slot = layout.m_user, layout.e_slot
        self._e_ts, self._e_recv, self._ends = layout.e_ts, layout.e_recv, layout.ends
        self._t_code, self._t_value, self._a_code = layout.t_code, layout.t_value, layout.a_code
        self._t_key, self._a_pair = layout.t_key, layout.a_pair
        self._blob, self._m_off = blob, m_off

    def _ensure_table(self) -> None:
        """Build the message-id hash table (deferred until an add to a non-empty log)."""
        if self._table is not None:
            return
        size = 16
        while size < 2 * (len(self._m_off) - 1):
            size *= 2
        self._rehash(size)

    def _dedupe(
        self, mids: list[str], uids: list[str], ts: Sequence[int], recv: Sequence[int]
    ) -> tuple[bytearray, list[int], list[int], dict[int, int]]:
        """Resolve message ids: which pending rows win (``alive``), each row's slot, the rows
        that won the slots created now, and placed slots a pending row takes over."""
        count = len(mids)
        base = len(self._m_off) - 1
        self._reserve(base + count)
        table, blob, m_off = cast("array[int]", self._table), self._blob, self._m_off
        mask = len(table) - 1
        encoded = list(map(str.encode, mids, repeat("utf-8"), repeat("surrogatepass")))
        hashes = list(map(hash, mids))
        alive = bytearray(b"\x01") * count
        row_slot = [0] * count
        taken: dict[int, int] = {}

        new_slot_rows, is_fast = self._insert_fresh(hashes, encoded, row_slot)

        # The rest one by one: collisions, and message ids seen before (duplicates).
        for row in compress(range(count), map(not_, is_fast)):
            digest = hashes[row]
            position = digest & mask
            fingerprint = (digest >> 24) & _FINGERPRINT_MASK
            while True:
                entry = table[position]
                if not entry:
                    slot = base + len(new_slot_rows)
                    table[position] = (fingerprint << _SLOT_BITS) | (slot + 1)
                    new_slot_rows.append(row)
                    blob += encoded[row]
                    m_off.append(len(blob))
                    row_slot[row] = slot
                    break
                if entry >> _SLOT_BITS == fingerprint:
                    slot = (entry & _SLOT_MASK) - 1
                    if blob[m_off[slot] : m_off[slot + 1]] == encoded[row]:
                        row_slot[row] = slot
                        rank = (recv[row], ts[row], uids[row])
                        if slot >= base:
                            other = new_slot_rows[slot - base]
                            if rank < (recv[other], ts[other], uids[other]):
                                alive[other] = 0
                                new_slot_rows[slot - base] = row
                            else:
                                alive[row] = 0
                        elif slot in taken:
                            other = taken[slot]
                            if rank < (recv[other], ts[other], uids[other]):
                                alive[other] = 0
                                taken[slot] = row
                            else:
                                alive[row] = 0
                        elif rank < self._placed_rank(slot):
                            taken[slot] = row
                        else:
                            alive[row] = 0
                        break
                position = (position + 1) & mask
        return alive, row_slot, new_slot_rows, taken

    def _insert_fresh(
        self, hashes: list[int], encoded: list[bytes], row_slot: list[int]
    ) -> tuple[list[int], list[bool]]:
        """Give a new slot, in bulk, to each row surely new: returns those rows (in order)
        and which rows they are."""
        table, blob, m_off = cast("array[int]", self._table), self._blob, self._m_off
        mask = len(table) - 1
        base = len(m_off) - 1
        count = len(hashes)
        # In bulk (C loops): a row whose home position is empty, and is the first of the batch
        # to hash there, takes a new slot at once. Linear probing never leaves a gap before a
        # key, so such a message id cannot be in the table already.
        positions = list(map(and_, hashes, repeat(mask)))
        rows = range(count)
        first_at = dict(zip(reversed(positions), reversed(rows), strict=True))
        is_fast = list(
            map(
                and_,
                map(not_, map(table.__getitem__, positions)),
                map(eq, map(first_at.__getitem__, positions), rows),
            )
        )
        del first_at
        new_slot_rows = list(compress(rows, is_fast))
        fast = len(new_slot_rows)
        fingerprints = map(
            and_, map(rshift, compress(hashes, is_fast), repeat(24)), repeat(_FINGERPRINT_MASK)
        )
        entries = map(
            or_, map(lshift, fingerprints, repeat(_SLOT_BITS)), range(base + 1, base + fast + 1)
        )
        _consume(map(table.__setitem__, compress(positions, is_fast), entries))
        _consume(map(row_slot.__setitem__, new_slot_rows, range(base, base + fast)))
        fast_encoded = list(compress(encoded, is_fast))
        m_off.extend(islice(accumulate(map(len, fast_encoded), initial=len(blob)), 1, None))
        blob += b"".join(fast_encoded)
        return new_slot_rows, is_fast

    def _placed_rank(self, slot: int) -> tuple[int, int, str]:
        user = self._m_user[slot]
        position = self._e_slot.index(slot, self._u_range[2 * user], self._u_range[2 * user + 1])
        return (self._e_recv[position], self._e_ts[position], self._u_ids[user])

    def _reserve(self, slots: int) -> None:
        """Grow the hash table so ``slots`` message ids keep it at most half full."""
        if self._table is None:
            self._ensure_table()
        size = len(cast("array[int]", self._table))
        if 2 * slots <= size:
            return
        while size < 2 * slots:
            size *= 2
        self._rehash(size)

    def _rehash(self, size: int) -> None:
        """A new hash table of ``size`` entries holding every message id (slot numbers kept).

        In C where the speedups are built. Otherwise in bulk: an id that is the first to hash to
        its home entry takes it at once (C-level passes); only the others probe, one by one.
        """
        blob, m_off = self._blob, self._m_off
        if _SPEEDUPS is not None:
            self._table = array(
                "q", _SPEEDUPS.hash_table(blob, m_off, size, _SLOT_BITS, _FINGERPRINT_MASK)
            )
            return
        table: array[int] = array("q", bytes(8 * size))
        self._table = table
        slots = len(m_off) - 1
        if not slots:
            return
        pieces = map(blob.__getitem__, map(slice, m_off[:-1], islice(m_off, 1, None)))
        mids = map(bytearray.decode, pieces, repeat("utf-8"), repeat("surrogatepass"))
        hashes = list(map(hash, mids))
        mask = size - 1
        positions = list(map(and_, hashes, repeat(mask)))
        first_at = dict(zip(reversed(positions), reversed(range(slots)), strict=True))
        is_fast = list(map(eq, map(first_at.__getitem__, positions), range(slots)))
        del first_at
        fingerprints = map(
            and_, map(rshift, compress(hashes, is_fast), repeat(24)), repeat(_FINGERPRINT_MASK)
        )
        entries = map(
            or_,
            map(lshift, fingerprints, repeat(_SLOT_BITS)),
            compress(range(1, slots + 1), is_fast),
        )
        _consume(map(table.__setitem__, compress(positions, is_fast), entries))
        for slot in compress(range(slots), map(not_, is_fast)):
            digest = hashes[slot]
            position = digest & mask
            while table[position]:
                position = (position + 1) & mask
            table[position] = (((digest >> 24) & _FINGERPRINT_MASK) << _SLOT_BITS) | (slot + 1)

    def _message_id(self, slot: int) -> str:
        return self._blob[self._m_off[slot] : self._m_off[slot + 1]].decode(
            "utf-8", "surrogatepass"
        )

    def _copy_out(self, user: int, batch: _Batch, losers: set[int]) -> None:
        """Append a user's placed events (those still winning) to a batch to re-place."""
        start, end = self._u_range[2 * user], self._u_range[2 * user + 1]
        ends = self._ends
        t0, a0 = ends[2 * start], ends[2 * start + 1]
        t_shift = len(batch.t_code) - t0
        a_shift = len(batch.a_code) - a0
        batch.t_code.extend(self._t_code[t0 : ends[2 * end]])
        batch.t_value.extend(self._t_value[t0 : ends[2 * end]])
        batch.a_code.extend(self._a_code[a0 : ends[2 * end + 1]])
        for position in range(start, end):
            slot = self._e_slot[position]
            if slot in losers:
                continue
            batch.user.append(user)
            batch.ts.append(self._e_ts[position])
            batch.recv.append(self._e_recv[position])
            batch.slot.append(slot)
            batch.t_start.append(ends[2 * position] + t_shift)
            batch.t_end.append(ends[2 * position + 2] + t_shift)
            batch.a_start.append(ends[2 * position + 1] + a_shift)
            batch.a_end.append(ends[2 * position + 3] + a_shift)

    def _place(self, batch: _Batch, emptied: Sequence[int], rows: list[int]) -> None:
        """Sort a batch's ``rows`` by (user, timestamp, received_at, message_id), append them.

        Rows are sorted by user only (small integers: the fastest sort Python has), which
        keeps each user's rows in arrival order; only users whose rows are then not strictly
        increasing in timestamp (late arrivals, ties) are sorted again on the full key.
        """
        for user in emptied:
            self._u_range[2 * user] = self._u_range[2 * user + 1] = 0
        size = len(rows)
        if not size:
            return
        rows.sort(key=batch.user.__getitem__)
        order = rows
        user_sorted = _gather(batch.user, order)
        ts_sorted = _gather(batch.ts, order)
        disordered = {
            user_sorted[i]
            for i in compress(range(size - 1), map(ge, ts_sorted, islice(ts_sorted, 1, None)))
            if user_sorted[i] == user_sorted[i + 1]
        }
        for user in disordered:
            low = bisect_left(user_sorted, user)
            high = bisect_right(user_sorted, user, low)
            order[low:high] = sorted(order[low:high], key=lambda row: self._row_key(batch, row))
            ts_sorted[low:high] = _gather(batch.ts, order[low:high])

        first = len(self._e_ts)
        self._e_ts.extend(ts_sorted)
        del ts_sorted
        self._e_recv.extend(_gather(batch.recv, order))
        self._e_slot.extend(_gather(batch.slot, order, _INDEX))
        starts = list(map(batch.t_start.__getitem__, order))
        ends = list(map(batch.t_end.__getitem__, order))
        pairs = list(chain.from_iterable(map(range, starts, ends)))
        self._t_code.extend(
            array(batch.t_code.typecode, list(map(batch.t_code.__getitem__, pairs)))
        )
        self._t_value.extend(map(batch.t_value.__getitem__, pairs))
        t_bounds = array(
            _INDEX, islice(accumulate(map(sub, ends, starts), initial=self._ends[-2]), 1, None)
        )
        starts = list(map(batch.a_start.__getitem__, order))
        ends = list(map(batch.a_end.__getitem__, order))
        pairs = list(chain.from_iterable(map(range, starts, ends)))
        self._a_code.extend(
            array(batch.a_code.typecode, list(map(batch.a_code.__getitem__, pairs)))
        )
        a_bounds = array(
            _INDEX, islice(accumulate(map(sub, ends, starts), initial=self._ends[-1]), 1, None)
        )
        del order, starts, ends, pairs
        interleaved = array(_INDEX, bytes(2 * len(t_bounds) * array(_INDEX).itemsize))
        interleaved[0::2] = t_bounds
        interleaved[1::2] = a_bounds
        self._ends.extend(interleaved)

        ranges = self._u_range
        low = 0
        for user in dict.fromkeys(user_sorted):
            high = bisect_right(user_sorted, user, low)
            ranges[2 * user] = first + low
            ranges[2 * user + 1] = first + high
            low = high

    def _row_key(self, batch: _Batch, row: int) -> tuple[int, int, str]:
        return (batch.ts[row], batch.recv[row], self._message_id(batch.slot[row]))

    def _compact(self) -> None:
        """Drop the ranges users left behind: copy every live range into fresh columns."""
        e_ts: array[int] = array("q")
        e_recv: array[int] = array("q")
        e_slot: array[int] = array(_INDEX)
        ends: array[int] = array(_INDEX, [0, 0])
        t_code: array[int] = array(self._keys.code_type)
        a_code: array[int] = array(self._keys.code_type)
        t_value: list[Any] = []
        old, ranges = self._ends, self._u_range
        for user in range(len(ranges) // 2):
            start, end = ranges[2 * user], ranges[2 * user + 1]
            if end <= start:
                continue
            first = len(e_ts)
            e_ts.extend(self._e_ts[start:end])
            e_recv.extend(self._e_recv[start:end])
            e_slot.extend(self._e_slot[start:end])
            t0, a0, t1, a1 = old[2 * start], old[2 * start + 1], old[2 * end], old[2 * end + 1]
            shifts = cycle((len(t_code) - t0, len(a_code) - a0))
            ends.extend(map(add, old[2 * start + 2 : 2 * end + 2], shifts))
            t_code.extend(self._t_code[t0:t1])
            t_value.extend(self._t_value[t0:t1])
            a_code.extend(self._a_code[a0:a1])
            ranges[2 * user] = first
            ranges[2 * user + 1] = len(e_ts)
        self._e_ts, self._e_recv, self._e_slot, self._ends = e_ts, e_recv, e_slot, ends
        self._t_code, self._t_value, self._a_code = t_code, t_value, a_code
        self._t_key, self._a_pair = [], []

    def _state_known(self, user_id: str, positions: Iterable[int]) -> UserState:
        """The fold of the events at ``positions`` (in order)."""
        keys = self._keys
        ends = self._ends
        traits = keys.trait_template.copy()
        audiences = keys.audience_template.copy()
        for position in positions:
            low, high = ends[2 * position], ends[2 * position + 2]
            if high > low:
                traits.update(zip(self._t_key[low:high], self._t_value[low:high], strict=True))
            low, high = ends[2 * position + 1], ends[2 * position + 3]
            if high > low:
                audiences.update(self._a_pair[low:high])
        return _user_state(user_id, traits, audiences)

    def reconstruct_state(
        self, user_id: str, ts: dt.datetime, *, known_at: dt.datetime | None = None
    ) -> UserState:
        """The state of ``user_id`` at ``ts`` (inclusive), as DESIGN.md defines it.

        With ``known_at``, only events received by then count: what the warehouse knew. A user
        with no events gets every key ``None``. ``ts`` and ``known_at`` must be aware.
        """
        if self._pending:
            self._index()
        # The hot path is inlined: this is called in loops, and calls cost here.
        if ts.__class__ is dt.datetime and ts.tzinfo is _UTC_ZONE:
            moment = (ts - _EPOCH) // _ONE_US
        else:
            moment = _micros(ts, "ts")
        if user_id.__class__ is not str:
            _check_user_id(user_id)
        user = self._users.get(user_id)
        if user is None:
            if known_at is not None:
                _micros(known_at, "known_at")
            return UserState.empty(self._keys.space, user_id)
        start = self._u_range[2 * user]
        end = bisect_right(self._e_ts, moment, start, self._u_range[2 * user + 1])
        keys = self._keys
        if _SPEEDUPS is not None:
            known_only = () if known_at is None else (_micros(known_at, "known_at"), self._e_recv)
            return _SPEEDUPS.state(  # type: ignore[no-any-return]
                user_id,
                start,
                end,
                self._ends,
                self._t_key,
                self._t_value,
                self._a_pair,
                keys.trait_template,
                keys.audience_template,
                *known_only,
            )
        if known_at is not None:
            known = _micros(known_at, "known_at")
            e_recv = self._e_recv
            return self._state_known(user_id, [p for p in range(start, end) if e_recv[p] <= known])
        traits = keys.trait_template.copy()
        ends = self._ends
        low, high = ends[2 * start], ends[2 * end]
        if high > low:
            traits.update(zip(self._t_key[low:high], self._t_value[low:high], strict=True))
        audiences = keys.audience_template.copy()
        low, high = ends[2 * start + 1], ends[2 * end + 1]
        if high > low:
            audiences.update(self._a_pair[low:high])
        state: UserState = _new_object(UserState)
        _set_user_id(state, user_id)
        _set_traits(state, traits)
        _set_audiences(state, audiences)
        return state

    def snapshot(
        self, ts: dt.datetime, *, known_at: dt.datetime | None = None
    ) -> dict[str, UserState]:
        """``{user_id: state at ts}`` for every user with at least one event counted at ``ts``
        (and received by ``known_at``, when given)."""
        if self._pending:
            self._index()
        moment = _micros(ts, "ts")
        known = None if known_at is None else _micros(known_at, "known_at")
        keys = self._keys
        trait_template, audience_template = keys.trait_template, keys.audience_template
        e_ts, e_recv, ends, ranges = self._e_ts, self._e_recv, self._ends, self._u_range
        t_key, t_value, a_pair = self._t_key, self._t_value, self._a_pair
        if _SPEEDUPS is not None:
            return _SPEEDUPS.snapshot(  # type: ignore[no-any-return]
                moment,
                self._u_ids,
                ranges,
                e_ts,
                ends,
                t_key,
                t_value,
                a_pair,
                trait_template,
                audience_template,
                known,
                e_recv,
            )
        result: dict[str, UserState] = {}
        for user_id, start, stop in zip(self._u_ids, ranges[0::2], ranges[1::2], strict=True):
            if stop <= start or e_ts[start] > moment:
                continue
            end = stop if e_ts[stop - 1] <= moment else bisect_right(e_ts, moment, start, stop)
            if known is not None:
                positions = [p for p in range(start, end) if e_recv[p] <= known]
                if positions:
                    result[user_id] = self._state_known(user_id, positions)
                continue
            traits = trait_template.copy()
            low, high = ends[2 * start], ends[2 * end]
            if high > low:
                traits.update(zip(t_key[low:high], t_value[low:high], strict=True))
            audiences = audience_template.copy()
            low, high = ends[2 * start + 1], ends[2 * end + 1]
            if high > low:
                audiences.update(a_pair[low:high])
            state: UserState = _new_object(UserState)
            _set_user_id(state, user_id)
            _set_traits(state, traits)
            _set_audiences(state, audiences)
            result[user_id] = state
        return result

    # ---------------------------------------------------------------- events and history

    def users(self) -> list[str]:
        """Every user id with at least one event, sorted."""
        self._index()
        return sorted(
            uid
            for uid, start, end in zip(
                self._u_ids, self._u_range[0::2], self._u_range[1::2], strict=True
            )
            if end > start
        )

    def _range(self, user_id: str) -> tuple[int, int]:
        self._index()
        user = self._users.get(_check_user_id(user_id))
        if user is None:
            return 0, 0
        return self._u_range[2 * user], self._u_range[2 * user + 1]

    def _pairs(self, position: int) -> list[tuple[str, Any]]:
        """Event ``position``'s (key, value) pairs, in the Space's key order."""
        keys = self._keys
        low, high = self._ends[2 * position], self._ends[2 * position + 2]
        pairs = sorted(
            zip(self._t_code[low:high], self._t_value[low:high], strict=True), key=_FIRST
        )
        result = [(keys.trait_names[code], value) for code, value in pairs]
        low, high = self._ends[2 * position + 1], self._ends[2 * position + 3]
        result += map(keys.audience_pairs.__getitem__, sorted(self._a_code[low:high]))
        return result

    def _event(self, user_id: str, position: int) -> IdentifyEvent:
        return IdentifyEvent(
            self._message_id(self._e_slot[position]),
            user_id,
            _datetime(self._e_ts[position]),
            dict(self._pairs(position)),
            received_at=_datetime(self._e_recv[position]),
        )

    def events(self, user_id: str | None = None) -> Iterator[IdentifyEvent]:
        """The deduplicated events (one per message id), in (timestamp, received_at,
        message_id) order; only ``user_id``'s when given."""
        if user_id is not None:
            start, end = self._range(user_id)
            for position in range(start, end):
                yield self._event(user_id, position)
            return
        self._index()
        owners: list[int] = []
        positions: list[int] = []
        ranges = self._u_range
        for user, (start, end) in enumerate(zip(ranges[0::2], ranges[1::2], strict=True)):
            positions.extend(range(start, end))
            owners.extend(repeat(user, end - start))
        e_ts, e_recv = self._e_ts, self._e_recv
        times = list(map(e_ts.__getitem__, positions))
        received = list(map(e_recv.__getitem__, positions))
        order = sorted(range(len(positions)), key=lambda i: (times[i], received[i]))
        start = 0
        while start < len(order):  # equal (timestamp, received_at): by message id
            end = start + 1
            first = order[start]
            while end < len(order) and (times[order[end]], received[order[end]]) == (
                times[first],
                received[first],
            ):
                end += 1
            if end - start > 1:
                order[start:end] = sorted(
                    order[start:end],
                    key=lambda i: self._message_id(self._e_slot[positions[i]]),
                )
            start = end
        for i in order:
            yield self._event(self._u_ids[owners[i]], positions[i])

    def history(self, user_id: str) -> list[Change]:
        """Every change of ``user_id``'s keys, in event order (all events, however late)."""
        start, end = self._range(user_id)
        state: dict[str, Any] = {**self._keys.trait_template, **self._keys.audience_template}
        changes: list[Change] = []
        for position in range(start, end):
            pairs = [
                (key, value) for key, value in self._pairs(position) if not _same(state[key], value)
            ]
            if not pairs:
                continue
            timestamp = _datetime(self._e_ts[position])
            received_at = _datetime(self._e_recv[position])
            message_id = self._message_id(self._e_slot[position])
            for key, value in pairs:
                changes.append(
                    Change(user_id, timestamp, received_at, message_id, key, state[key], value)
                )
                state[key] = value
        return changes

    def _audience_code(self, audience: str) -> int:
        code = self._keys.code.get(audience)
        if code is None or code < self._keys.trait_count:
            raise InvalidEventError(
                f"unknown audience {audience!r}; known audiences: "
                f"{sorted(self._keys.audience_names)}"
            )
        return 2 * (code - self._keys.trait_count)

    def _intervals(self, user: int, audience: str, entered: int) -> list[MembershipInterval]:
        """One user's intervals in an audience (``entered``: its code for True)."""
        exited = entered - 1
        ends, a_code, e_ts = self._ends, self._a_code, self._e_ts
        user_id = self._u_ids[user]
        start, end = self._u_range[2 * user], self._u_range[2 * user + 1]
        low, high = ends[2 * start + 1], ends[2 * end + 1]
        if not (entered in a_code[low:high] or exited in a_code[low:high]):
            return []
        intervals: list[MembershipInterval] = []
        opened: int | None = None
        for position in range(start, end):
            codes = a_code[ends[2 * position + 1] : ends[2 * position + 3]]
            if entered in codes:
                if opened is None:
                    opened = e_ts[position]
            elif exited in codes and opened is not None:
                intervals.append(
                    MembershipInterval(
                        user_id, audience, _datetime(opened), _datetime(e_ts[position])
                    )
                )
                opened = None
        if opened is not None:
            intervals.append(MembershipInterval(user_id, audience, _datetime(opened), None))
        return intervals

    def membership_intervals(
        self, audience: str, user_id: str | None = None
    ) -> list[MembershipInterval]:
        """When users were in ``audience``: ``[entered_at, exited_at)`` stretches, sorted by
        user id then time (one user's only when ``user_id`` is given)."""
        entered = self._audience_code(audience) + 1
        self._index()
        if user_id is not None:
            user = self._users.get(_check_user_id(user_id))
            return [] if user is None else self._intervals(user, audience, entered)
        result: list[MembershipInterval] = []
        for user in sorted(range(len(self._u_ids)), key=self._u_ids.__getitem__):
            result += self._intervals(user, audience, entered)
        return result

    def members(
        self, audience: str, ts: dt.datetime, *, known_at: dt.datetime | None = None
    ) -> set[str]:
        """The user ids in ``audience`` (value ``True``) at ``ts``, as known at ``known_at``."""
        entered = self._audience_code(audience) + 1
        exited = entered - 1
        if self._pending:
            self._index()
        moment = _micros(ts, "ts")
        known = None if known_at is None else _micros(known_at, "known_at")
        e_ts, e_recv, ends, a_code = self._e_ts, self._e_recv, self._ends, self._a_code
        ranges = self._u_range
        result: set[str] = set()
        for user_id, start, stop in zip(self._u_ids, ranges[0::2], ranges[1::2], strict=True):
            if stop <= start or e_ts[start] > moment:
                continue
            end = bisect_right(e_ts, moment, start, stop)
            codes = a_code[ends[2 * start + 1] : ends[2 * end + 1]]
            if entered not in codes:
                continue
            if known is None and exited not in codes:
                result.add(user_id)
                continue
            value = None
            for position in range(end - 1, start - 1, -1):
                if known is not None and e_recv[position] > known:
                    continue
                own = a_code[ends[2 * position + 1] : ends[2 * position + 3]]
                if entered in own:
                    value = True
                    break
                if exited in own:
                    value = False
                    break
            if value:
                result.add(user_id)
        return result

    def audience_size(
        self,
        audience: str,
        times: Iterable[dt.datetime],
        *,
        known_at: dt.datetime | None = None,
    ) -> list[tuple[dt.datetime, int]]:
        """``[(time, number of members at time)]`` for each of ``times``, in the order given."""
        moments = [(t, _micros(t, "time")) for t in times]
        if known_at is not None:
            return [(t, len(self.members(audience, t, known_at=known_at))) for t, _ in moments]
        intervals = self.membership_intervals(audience)
        entries = sorted(_micros(i.entered_at, "entered_at") for i in intervals)
        exits = sorted(
            _micros(i.exited_at, "exited_at") for i in intervals if i.exited_at is not None
        )
        return [
            (t, bisect_right(entries, moment) - bisect_right(exits, moment))
            for t, moment in moments
        ]


def _consume(iterator: Iterator[Any]) -> None:
    """Run an iterator to its end in C (``map(setitem, ...)`` as a scatter)."""
    deque(iterator, maxlen=0)


def _gather(source: Sequence[int], order: Iterable[int], typecode: str = "q") -> array[int]:
    """``array(typecode, [source[i] for i in order])``, in C."""
    return array(typecode, list(map(source.__getitem__, order)))


def _concatenate(chunks: list[_Chunk]) -> _Chunk:
    """One chunk holding several, in order."""
    if len(chunks) == 1:
        return chunks[0]
    bound = [0]
    for chunk in chunks:
        bound.extend(map(add, islice(chunk.bound, 1, None), repeat(bound[-1])))
    return _Chunk(
        message_id=list(chain.from_iterable(c.message_id for c in chunks)),
        user_id=list(chain.from_iterable(c.user_id for c in chunks)),
        ts=list(chain.from_iterable(c.ts for c in chunks)),
        recv=list(chain.from_iterable(c.recv for c in chunks)),
        code=list(chain.from_iterable(c.code for c in chunks)),
        value=list(chain.from_iterable(c.value for c in chunks)),
        bound=bound,
    )


def _copy_rank(
    recv: Sequence[int], ts: Sequence[int], uids: list[str]
) -> Callable[[int], tuple[int, int, str]]:
    """Rows ranked as copies of one message id (DESIGN.md): received earliest, then earliest
    timestamp, then smallest user id."""
    return lambda row: (recv[row], ts[row], uids[row])


def _time_order(
    ts: Sequence[int], recv: Sequence[int], mids: list[str]
) -> Callable[[int], tuple[int, int, str]]:
    """Rows in event order: timestamp, then received_at, then message id."""
    return lambda row: (ts[row], recv[row], mids[row])


def _drop_copies(
    chunk: _Chunk,
) -> tuple[list[str], list[str], Sequence[int], Sequence[int], array[int], list[int]]:
    """A first batch without the copies that lose (only ids that repeat are ranked one by
    one): message ids, user ids, timestamps, received_at, and each event's first pair and
    number of pairs."""
    mids, uids, ts, recv, bound = (
        chunk.message_id,
        chunk.user_id,
        chunk.ts,
        chunk.recv,
        chunk.bound,
    )
    count = len(mids)
    copies = _repeated_numpy(mids) if _accelerated() else _repeated_python(mids)
    if not copies:
        return (
            mids,
            uids,
            ts,
            recv,
            array("q", islice(bound, count)),
            list(map(sub, islice(bound, 1, None), bound)),
        )
    alive = bytearray(b"\x01") * count
    rank = _copy_rank(recv, ts, uids)
    for group in copies.values():
        winner = min(group, key=rank)  # on a full tie, the first copy added
        for row in group:
            if row != winner:
                alive[row] = 0
    live_ts = list(compress(ts, alive))
    return (
        list(compress(mids, alive)),
        list(compress(uids, alive)),
        live_ts,
        live_ts if recv is ts else list(compress(recv, alive)),
        array("q", compress(bound, alive)),
        list(compress(map(sub, islice(bound, 1, None), bound), alive)),
    )


def _repeated_python(mids: list[str]) -> dict[str, list[int]]:
    """The rows of each message id that occurs more than once, in row order (one dict,
    message id -> last row)."""
    count = len(mids)
    last = dict(zip(mids, range(count), strict=True))
    if len(last) == count:
        return {}
    # Rows that are not the last of their message id: mark the last rows (a scatter into a
    # byte per row, reading the dict in its own order) rather than look every id up again.
    is_last = bytearray(count)
    _consume(map(is_last.__setitem__, last.values(), repeat(1)))
    copies: dict[str, list[int]] = {}
    for row in compress(range(count), map(not_, is_last)):
        copies.setdefault(mids[row], []).append(row)
    for mid, group in copies.items():
        group.append(last[mid])
    return copies


def _repeated_numpy(mids: list[str]) -> dict[str, list[int]]:
    """:func:`_repeated_python`'s result from the ids' hashes: a sort of 64-bit integers
    finds the rows whose hash repeats (every copy, and the rare collision), and only those
    rows are grouped by their text. Hashing reads the ids in order, where filling a dict of
    a million ids is bound by random memory access (several times slower)."""
    import numpy as np  # noqa: PLC0415 (optional: the fast extra)

    hashes = np.fromiter(map(hash, mids), dtype=np.int64, count=len(mids))
    order = np.argsort(hashes, kind="stable")
    same = hashes[order][1:] == hashes[order][:-1]
    if not same.any():
        return {}
    candidate = np.zeros(len(mids), dtype=bool)
    candidate[:-1] |= same
    candidate[1:] |= same
    groups: dict[str, list[int]] = {}
    for row in np.sort(order[candidate]).tolist():
        groups.setdefault(mids[row], []).append(row)
    return {mid: rows for mid, rows in groups.items() if len(rows) > 1}


def _group_by_user(
    mids: list[str], uids: list[str], ts: Sequence[int], recv: Sequence[int]
) -> tuple[list[str], dict[str, int], list[int], array[int], list[int], list[int]]:
    """Users numbered in order of first appearance, and rows in (user, timestamp, received_at,
    message id) order: ``(user ids, id -> number, each row's number, the row order, each
    user's first position (and the end), the timestamps in that order)``.

    A stable sort by user number (small integers) keeps each user's rows in arrival order;
    only users whose rows are then not strictly increasing in time are sorted again on the
    full key.
    """
    size = len(mids)
    per_user = Counter(uids)
    u_ids = list(per_user)
    users = dict(zip(u_ids, range(len(u_ids)), strict=True))
    codes = list(map(users.__getitem__, uids))
    # Packed at once: a list of the sorted row numbers would point at int objects in row
    # order, and every later pass over it would read them scattered over the heap.
    order = array("q", sorted(range(size), key=codes.__getitem__))
    starts = list(accumulate(per_user.values(), initial=0))
    del per_user
    # Gathered from a packed array, not from a list of int objects scattered over the heap:
    # the random reads touch 8 bytes each, and the ints made are contiguous.
    ts_packed = array("q", ts)
    ts_sorted = list(map(ts_packed.__getitem__, order))
    del ts_packed
    # Positions j not after j - 1 in time, minus each user's first (set difference in C).
    not_after = set(compress(range(1, size), map(le, islice(ts_sorted, 1, None), ts_sorted)))
    not_after.difference_update(starts)
    resorted: set[int] = set()
    key = _time_order(ts, recv, mids)
    for j in sorted(not_after):
        user = bisect_right(starts, j) - 1
        if user in resorted:
            continue
        resorted.add(user)
        low, high = starts[user], starts[user + 1]
        order[low:high] = array("q", sorted(order[low:high], key=key))
        ts_sorted[low:high] = map(ts.__getitem__, order[low:high])
    return u_ids, users, codes, order, starts, ts_sorted


# --------------------------------------------------------------------------------------------
# The first index of an empty log, laid out in bulk
# --------------------------------------------------------------------------------------------


@attrs.define(slots=True)
class _Layout:
    """The columns of a freshly indexed log (see :class:`IdentifiesLog`'s slots)."""

    u_ids: list[str]
    users: dict[str, int]
    u_range: array[int]
    m_user: array[int]
    e_slot: array[int]
    e_ts: array[int]
    e_recv: array[int]
    ends: array[int]
    t_code: array[int]
    t_value: list[Any]
    a_code: array[int]
    # The pairs' key objects (IdentifiesLog._t_key / _a_pair); empty: made by _sync_pairs.
    t_key: list[str] = attrs.field(factory=list)
    a_pair: list[tuple[str, bool]] = attrs.field(factory=list)


def _message_buffer(mids: list[str]) -> tuple[bytearray, array[int]]:
    """Message ids in slot order as UTF-8 in one buffer, and each one's offset (ASCII: the
    offsets are str lengths)."""
    joined = "".join(mids)
    if joined.isascii():
        return bytearray(joined.encode("ascii")), array("q", accumulate(map(len, mids), initial=0))
    encoded = list(map(str.encode, mids, repeat("utf-8"), repeat("surrogatepass")))
    return bytearray(b"".join(encoded)), array("q", accumulate(map(len, encoded), initial=0))


@cache
def _numpy_installed() -> bool:
    try:
        import numpy  # noqa: F401, PLC0415 (optional: the fast extra)
    except ImportError:
        return False
    return True


def _accelerated() -> bool:
    """Whether bulk indexing uses numpy (installed with the ``fast`` extra)."""
    return _numpy_installed()


def _layout_python(
    *,
    mids: list[str],
    uids: list[str],
    ts: Sequence[int],
    recv: Sequence[int],
    pair_start: array[int],
    pair_count: list[int],
    codes_all: Sequence[int],
    values_all: list[Any],
    keys: _Keys,
) -> _Layout:
    """The layout of live rows, in pure Python (C-level passes over whole columns).

    A random permutation of a million rows is bound by memory latency, so as little as
    possible is permuted, and from packed arrays or cached small ints rather than from int
    objects scattered over the heap: the user order, the timestamps, each event's pair range
    and the pairs themselves are gathered; ``received_at`` is copied from the timestamps and
    only the late events' are fixed.
    """
    size = len(mids)
    u_ids, users, codes, order, starts, ts_sorted = _group_by_user(mids, uids, ts, recv)
    u_range = array(_INDEX, bytes(2 * len(u_ids) * array(_INDEX).itemsize))
    u_range[0::2] = array(_INDEX, islice(starts, len(u_ids)))
    u_range[1::2] = array(_INDEX, islice(starts, 1, None))
    del starts
    e_ts = array("q", ts_sorted)
    del ts_sorted
    e_recv = array("q", e_ts)
    if recv is not ts:  # fix the positions of the events received after their timestamp
        late = set(compress(range(size), map(ne, recv, ts)))
        for position in compress(range(size), map(late.__contains__, order)):
            e_recv[position] = recv[order[position]]
        del late
    # Each event's pair range, gathered as a start (from a packed array) and a count (a
    # cached small int); then every pair in position order, split into traits and audiences.
    firsts = list(map(pair_start.__getitem__, order))
    counts = list(map(pair_count.__getitem__, order))
    pairs = list(chain.from_iterable(map(range, firsts, map(add, firsts, counts))))
    sorted_bound = list(accumulate(counts, initial=0))
    del firsts, counts
    key_codes = list(map(codes_all.__getitem__, pairs))
    values = list(map(values_all.__getitem__, pairs))
    del pairs
    t_code, t_value, a_code, t_bound, a_bound = keys.split(key_codes, values, sorted_bound)
    del key_codes, values, sorted_bound
    ends = array(_INDEX, bytes(2 * (size + 1) * array(_INDEX).itemsize))
    ends[0::2] = array(_INDEX, t_bound)
    ends[1::2] = array(_INDEX, a_bound)
    return _Layout(
        u_ids=u_ids,
        users=users,
        u_range=u_range,
        m_user=array(_INDEX, codes),
        e_slot=array(_INDEX, order),
        e_ts=e_ts,
        e_recv=e_recv,
        ends=ends,
        t_code=array(keys.code_type, t_code),
        t_value=t_value,
        a_code=array(keys.code_type, a_code),
    )


def _number_users_numpy(uids: list[str]) -> tuple[list[str], Any]:
    """Users numbered in order of first appearance, and each row's number (a numpy array),
    from the ids' hashes: one ``unique`` over 64-bit integers instead of a dict lookup per
    row. Every row's id is then compared with its number's id; if two ids share a hash,
    the numbering is redone with a dict."""
    import numpy as np  # noqa: PLC0415 (optional: the fast extra)

    hashes = np.fromiter(map(hash, uids), dtype=np.int64, count=len(uids))
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    appearance = np.argsort(first)
    number = np.empty(len(first), dtype=np.int64)
    number[appearance] = np.arange(len(first), dtype=np.int64)
    codes = number[inverse.reshape(-1)]
    u_ids = list(map(uids.__getitem__, first[appearance].tolist()))
    if all(map(eq, uids, map(u_ids.__getitem__, codes.tolist()))):
        return u_ids, codes
    u_ids = list(dict.fromkeys(uids))  # a hash shared by two ids: number them by text
    users = dict(zip(u_ids, range(len(u_ids)), strict=True))
    return u_ids, np.fromiter(map(users.__getitem__, uids), dtype=np.int64, count=len(uids))


def _layout_numpy(
    *,
    mids: list[str],
    uids: list[str],
    ts: Sequence[int],
    recv: Sequence[int],
    pair_start: array[int],
    pair_count: list[int],
    codes_all: Sequence[int],
    values_all: list[Any],
    keys: _Keys,
) -> _Layout:
    """:func:`_layout_python`'s result, with the sorts and gathers done by numpy.

    Rows are ordered by one ``lexsort`` on (user number, timestamp, received_at); rows tied
    on all three (rare) are put in message-id order in Python. Only the trait values, which
    are Python objects, are gathered by Python.
    """
    import numpy as np  # noqa: PLC0415 (optional: the fast extra)

    size = len(mids)
    index_dtype = np.dtype(f"u{array(_INDEX).itemsize}")
    u_ids, codes = _number_users_numpy(uids)
    users = dict(zip(u_ids, range(len(u_ids)), strict=True))
    ts_a = np.array(ts, dtype=np.int64)
    recv_a = ts_a if recv is ts else np.array(recv, dtype=np.int64)
    order = np.lexsort((recv_a, ts_a, codes))
    e_ts, e_recv, user_sorted = ts_a[order], recv_a[order], codes[order]
    same_user = user_sorted[1:] == user_sorted[:-1]
    ties = same_user & (e_ts[1:] == e_ts[:-1]) & (e_recv[1:] == e_recv[:-1])
    tied: list[int] = np.flatnonzero(ties).tolist()
    run_start = 0
    for i, j in enumerate(tied):  # position j ties with j + 1: runs of consecutive j
        if i == len(tied) - 1 or tied[i + 1] != j + 1:
            low, high = tied[run_start], j + 2
            order[low:high] = sorted(order[low:high].tolist(), key=mids.__getitem__)
            run_start = i + 1
    del user_sorted, same_user, ties, tied

    counts = np.bincount(codes, minlength=len(u_ids))
    starts = np.zeros(len(u_ids) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    u_range = np.empty(2 * len(u_ids), dtype=index_dtype)
    u_range[0::2] = starts[:-1]
    u_range[1::2] = starts[1:]

    pair_counts = np.array(pair_count, dtype=np.int64)[order]
    sorted_bound = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(pair_counts, out=sorted_bound[1:])
    total = int(sorted_bound[-1])
    firsts = np.frombuffer(pair_start, dtype=np.int64)[order]
    pairs = np.repeat(firsts - sorted_bound[:-1], pair_counts) + np.arange(total, dtype=np.int64)
    del firsts, pair_counts
    key_codes = np.array(codes_all, dtype=np.int64)[pairs]
    is_trait = key_codes < keys.trait_count
    t_value = list(map(values_all.__getitem__, pairs[is_trait].tolist()))
    is_audience = ~is_trait
    audience_values = np.fromiter(
        map(values_all.__getitem__, pairs[is_audience].tolist()),
        dtype=np.int64,
        count=int(np.count_nonzero(is_audience)),
    )
    a_code = (key_codes[is_audience] - keys.trait_count) * 2 + audience_values
    trait_cumulative = np.zeros(total + 1, dtype=np.int64)
    np.cumsum(is_trait, out=trait_cumulative[1:])
    t_bound = trait_cumulative[sorted_bound]
    ends = np.empty(2 * (size + 1), dtype=index_dtype)
    ends[0::2] = t_bound
    ends[1::2] = sorted_bound - t_bound
    code_dtype = np.dtype(f"u{array(keys.code_type).itemsize}")
    return _Layout(
        u_ids=u_ids,
        users=users,
        u_range=array(_INDEX, u_range.tobytes()),
        m_user=array(_INDEX, codes.astype(index_dtype).tobytes()),
        e_slot=array(_INDEX, order.astype(index_dtype).tobytes()),
        e_ts=array("q", e_ts.tobytes()),
        e_recv=array("q", e_recv.tobytes()),
        ends=array(_INDEX, ends.tobytes()),
        t_code=array(keys.code_type, key_codes[is_trait].astype(code_dtype).tobytes()),
        t_value=t_value,
        a_code=array(keys.code_type, a_code.astype(code_dtype).tobytes()),
    )


def _packed(numbers: Sequence[int]) -> array[int]:
    """``numbers`` as an ``array('q')`` (itself when it already is one)."""
    if isinstance(numbers, array) and numbers.typecode == "q":
        return numbers
    return array("q", numbers)


def _layout_compiled(chunk: _Chunk, keys: _Keys) -> tuple[_Layout, bytearray, array[int]] | None:
    """:func:`_drop_copies`, :func:`_layout_python` and :func:`_message_buffer` in one call
    to the C speedups (which also make the pairs' key objects), or ``None`` where the
    speedups are not built or an id is a ``str`` subclass, which only Python may hash."""
    compiled = _SPEEDUPS
    if compiled is None:
        return None
    built = compiled.layout(
        chunk.message_id,
        chunk.user_id,
        _packed(chunk.ts),
        _packed(chunk.recv),
        _packed(chunk.code),
        chunk.value,
        _packed(chunk.bound),
        keys.trait_names,
        keys.audience_pairs,
        array(_INDEX).itemsize,
        array(keys.code_type).itemsize,
    )
    if built is None:
        return None
    blob, m_off, u_ids, u_range, m_user, e_slot, e_ts, e_recv, ends, *pairs = built
    t_code, t_value, a_code, t_key, a_pair = pairs
    layout = _Layout(
        u_ids=u_ids,
        users=dict(zip(u_ids, range(len(u_ids)), strict=True)),
        u_range=array(_INDEX, u_range),
        m_user=array(_INDEX, m_user),
        e_slot=array(_INDEX, e_slot),
        e_ts=array("q", e_ts),
        e_recv=array("q", e_recv),
        ends=array(_INDEX, ends),
        t_code=array(keys.code_type, t_code),
        t_value=t_value,
        a_code=array(keys.code_type, a_code),
        t_key=t_key,
        a_pair=a_pair,
    )
    return layout, blob, array("q", m_off)


def _same(old: Any, new: Any) -> bool:
    return old is new or (type(old) is type(new) and old == new)


def reconstruct_state(
    log: IdentifiesLog, user_id: str, ts: dt.datetime, *, known_at: dt.datetime | None = None
) -> UserState:
    """The state of ``user_id`` at ``ts`` in ``log``: :meth:`IdentifiesLog.reconstruct_state`."""
    if not isinstance(log, IdentifiesLog):
        raise InvalidEventError(f"reconstruct_state needs an IdentifiesLog, got {log!r}")
    return log.reconstruct_state(user_id, ts, known_at=known_at)
