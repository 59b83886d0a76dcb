"""Definitions and values: the Space, its traits and audiences, identify events, user states.

This module imports nothing else of the library's but its errors. Every value class is a frozen,
slotted attrs class, validated when it is made.

>>> import datetime as dt
>>> space = Space(
...     traits=[ComputedTrait("lifetime_value", TraitType.NUMBER)],
...     audiences=[Audience("high_value_users")],
... )
>>> space.schema
'personas_default'
>>> event = IdentifyEvent("m1", "u1", dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
...                       {"high_value_users": True, "lifetime_value": 120.5})
>>> space.validate_event(event) is event
True
>>> event.received_at == event.timestamp
True
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs

from personas_warehouse.errors import (
    ColumnCollisionError,
    InvalidEventError,
    InvalidSpaceError,
    InvalidTimestampError,
    UnsupportedValueError,
)

__all__ = [
    "DEFAULT_SCHEMA",
    "FLOAT_EXACT_INT",
    "INT64_MAX",
    "INT64_MIN",
    "Audience",
    "ComputedTrait",
    "IdentifyEvent",
    "Membership",
    "Space",
    "TraitType",
    "UserState",
    "ensure_aware",
    "json_text",
    "portable_stem",
    "segment_snake_case",
    "validate_trait_value",
]

DEFAULT_SCHEMA: Final = "personas_default"
"""The schema Segment Personas syncs into, and ours by default."""

INT64_MIN: Final = -(2**63)
"""The smallest INTEGER trait value (a 64-bit signed integer)."""
INT64_MAX: Final = 2**63 - 1
"""The largest INTEGER trait value."""
FLOAT_EXACT_INT: Final = 2**53
"""The largest int a double (a NUMBER) holds exactly; past it, digits are lost."""


class TraitType(enum.Enum):
    """The type of a computed trait's values."""

    BOOLEAN = "boolean"
    """``True`` / ``False``."""
    INTEGER = "integer"
    """A 64-bit signed integer (a Python ``int``, never a ``bool``)."""
    NUMBER = "number"
    """A double: ints and floats, finite, never bools."""
    STRING = "string"
    """Text of any length, without NUL bytes."""
    TIMESTAMP = "timestamp"
    """A timezone-aware instant, stored in UTC."""
    JSON = "json"
    """Any JSON document (objects, arrays, strings, numbers, booleans)."""


class Membership(enum.Enum):
    """Tri-state audience membership, as the warehouse stores it (``True``/``False``/``NULL``).

    >>> Membership.from_value(False)
    <Membership.EXITED: False>
    >>> Membership.NEVER.value is None
    True
    """

    IN = True
    """The user is in the audience."""
    EXITED = False
    """The user was in the audience and has exited."""
    NEVER = None
    """The user is not in the audience and never was."""

    @classmethod
    def from_value(cls, value: bool | None) -> Membership:
        """The membership a warehouse value (``True``/``False``/``None``) stands for."""
        if value is None:
            return cls.NEVER
        if value is True:
            return cls.IN
        if value is False:
            return cls.EXITED
        raise InvalidEventError(
            f"audience membership must be True, False or None, got {value!r} "
            f"({type(value).__name__})"
        )


# --------------------------------------------------------------------------------------------
# Keys and their Segment column stems
# --------------------------------------------------------------------------------------------


def _is_lower_or_digit(char: str) -> bool:
    return "a" <= char <= "z" or "0" <= char <= "9"


def _is_upper_or_digit(char: str) -> bool:
    return "A" <= char <= "Z" or "0" <= char <= "9"


def _is_ascii_alnum(char: str) -> bool:
    return _is_lower_or_digit(char) or "A" <= char <= "Z"


def segment_snake_case(key: str) -> str:
    """The snake_case name Segment's warehouses give a key (the go-snakecase rules).

    ASCII letters and digits are kept, anything else separates words, a lower-to-upper change
    starts a word, a run of capitals stays one word. The result may be empty (a key with no ASCII
    letter or digit); :func:`personas_warehouse.column_name` gives such keys a hashed name.

    >>> [segment_snake_case(k) for k in ["orderID", "CStringRef", "sample___text", "2FA Enabled"]]
    ['order_id', 'cstring_ref', 'sample_text', '2fa_enabled']
    """
    length = len(key)
    idx = 0
    # Fast path: already lower snake_case (an underscore only when a lower/digit follows).
    while idx < length and (
        _is_lower_or_digit(key[idx])
        or (key[idx] == "_" and idx < length - 1 and _is_lower_or_digit(key[idx + 1]))
    ):
        idx += 1
    if idx == length:
        return key
    if idx > 0 and "0" <= key[idx - 1] <= "9":
        idx -= 1  # a digit followed by a capital starts the capital's word
    out = [key[:idx]]
    size = idx
    while idx < length:
        if not _is_ascii_alnum(key[idx]):
            idx += 1
            continue
        if size:
            out.append("_")
        start = idx
        while idx < length and _is_upper_or_digit(key[idx]):
            idx += 1
        while idx < length and _is_lower_or_digit(key[idx]):
            idx += 1
        word = key[start:idx].lower()
        out.append(word)
        size += len(word)
    return "".join(out)


def portable_stem(key: str) -> str:
    """The dialect-independent column stem of a key, used to find colliding keys.

    It is :func:`segment_snake_case`, with a leading ``_`` before a leading digit (BigQuery
    needs a column to start with a letter or ``_``; the check is made for every warehouse so a
    Space stays portable). Empty for a key with no ASCII letter or digit.

    >>> portable_stem("2FA Enabled")
    '_2fa_enabled'
    """
    stem = segment_snake_case(key)
    if stem[:1].isdigit():
        return "_" + stem
    return stem


def _validate_key(kind: str, key: object) -> None:
    if not isinstance(key, str):
        raise InvalidSpaceError(f"{kind} key must be a string, got {key!r}")
    if not key.strip():
        raise InvalidSpaceError(f"{kind} key must not be empty or blank, got {key!r}")
    if "\x00" in key:
        raise InvalidSpaceError(f"{kind} key {key!r} contains a NUL byte; remove it")


@attrs.frozen(slots=True)
class ComputedTrait:
    """A computed trait: one ``users`` column, its value per user (or ``None``).

    >>> ComputedTrait("lifetime_value", TraitType.NUMBER).type
    <TraitType.NUMBER: 'number'>
    """

    key: str = attrs.field()
    type: TraitType = attrs.field(default=TraitType.STRING)

    @key.validator
    def _check_key(self, _: attrs.Attribute[str], value: str) -> None:
        _validate_key("trait", value)

    @type.validator
    def _check_type(self, _: attrs.Attribute[TraitType], value: TraitType) -> None:
        if not isinstance(value, TraitType):
            known = ", ".join(t.name for t in TraitType)
            raise InvalidSpaceError(
                f"trait {self.key!r}: type must be a TraitType ({known}), got {value!r}"
            )


@attrs.frozen(slots=True)
class Audience:
    """An audience: one boolean ``users`` column, tri-state (see :class:`Membership`)."""

    key: str = attrs.field()

    @key.validator
    def _check_key(self, _: attrs.Attribute[str], value: str) -> None:
        _validate_key("audience", value)


def _to_tuple(items: Iterable[Any]) -> tuple[Any, ...]:
    if isinstance(items, str | bytes):
        raise InvalidSpaceError(f"expected a list of definitions, got the string {items!r}")
    return tuple(items)


def _to_frozenset(items: Iterable[str]) -> frozenset[str]:
    if isinstance(items, str | bytes):
        raise InvalidSpaceError(f"expected a list of keys, got the string {items!r}")
    return frozenset(items)


def _validate_schema(_: object, __: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidSpaceError(f"schema name must be a non-empty string, got {value!r}")
    if "\x00" in value:
        raise InvalidSpaceError(f"schema name {value!r} contains a NUL byte; remove it")


@attrs.frozen(slots=True)
class Space:
    """A Personas space: its traits and audiences, the schema they sync into, what syncs.

    Selective sync: ``sync_users`` / ``sync_identifies`` choose the tables, ``excluded`` names
    trait or audience keys that are not synced (no column, and events carrying them are refused).

    >>> space = Space(traits=[ComputedTrait("orderID")], audiences=[Audience("order id")])
    Traceback (most recent call last):
    ...
    personas_warehouse.errors.ColumnCollisionError: keys 'orderID' and 'order id' would share \
the column 'order_id'; rename one of them
    """

    traits: tuple[ComputedTrait, ...] = attrs.field(default=(), converter=_to_tuple)
    audiences: tuple[Audience, ...] = attrs.field(default=(), converter=_to_tuple)
    schema: str = attrs.field(default=DEFAULT_SCHEMA, validator=_validate_schema)
    sync_users: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    sync_identifies: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    excluded: frozenset[str] = attrs.field(default=frozenset(), converter=_to_frozenset)

    def __attrs_post_init__(self) -> None:
        for trait in self.traits:
            if not isinstance(trait, ComputedTrait):
                raise InvalidSpaceError(f"traits must be ComputedTrait values, got {trait!r}")
        for audience in self.audiences:
            if not isinstance(audience, Audience):
                raise InvalidSpaceError(f"audiences must be Audience values, got {audience!r}")
        seen: dict[str, str] = {}
        stems: dict[str, str] = {}
        for kind, key in [("trait", t.key) for t in self.traits] + [
            ("audience", a.key) for a in self.audiences
        ]:
            if key in seen:
                raise InvalidSpaceError(
                    f"key {key!r} is defined twice (as {seen[key]} and as {kind}); "
                    "every trait and audience needs its own key"
                )
            seen[key] = kind
            stem = portable_stem(key)
            if stem and stem in stems:
                raise ColumnCollisionError(
                    f"keys {stems[stem]!r} and {key!r} would share the column {stem!r}; "
                    "rename one of them"
                )
            stems[stem] = key
        unknown = sorted(self.excluded - seen.keys())
        if unknown:
            raise InvalidSpaceError(
                f"excluded keys {unknown} are not traits or audiences of this space; "
                f"known keys: {sorted(seen)}"
            )
        if not self.sync_users and not self.sync_identifies:
            raise InvalidSpaceError(
                "a space must sync at least one table: set sync_users or sync_identifies"
            )

    @property
    def trait_types(self) -> Mapping[str, TraitType]:
        """Every trait key (synced or not) with its type, in definition order."""
        return MappingProxyType({t.key: t.type for t in self.traits})

    @property
    def trait_keys(self) -> tuple[str, ...]:
        """The synced trait keys, in definition order."""
        return tuple(t.key for t in self.traits if t.key not in self.excluded)

    @property
    def audience_keys(self) -> tuple[str, ...]:
        """The synced audience keys, in definition order."""
        return tuple(a.key for a in self.audiences if a.key not in self.excluded)

    @property
    def keys(self) -> tuple[str, ...]:
        """The synced keys: traits first, then audiences, each in definition order."""
        return self.trait_keys + self.audience_keys

    def is_audience(self, key: str) -> bool:
        """Whether ``key`` is one of this space's audiences (synced or not)."""
        return any(a.key == key for a in self.audiences)

    def validate_event(self, event: IdentifyEvent) -> IdentifyEvent:
        """Check an event's values against this space; returns the event (values normalised).

        Raises :class:`InvalidEventError` naming the key: unknown or excluded keys, ``None`` for
        an audience, values that do not fit the trait's type.
        """
        types = self.trait_types
        audiences = self.audience_keys
        normalized: dict[str, Any] | None = None
        for key, value in event.values.items():
            if key in self.excluded:
                raise InvalidEventError(
                    f"event {event.message_id!r}: key {key!r} is excluded from sync in this "
                    "space; drop it from the event or remove it from `excluded`"
                )
            if key in types:
                fixed = validate_trait_value(key, types[key], value, event.message_id)
                if fixed is not value:
                    normalized = dict(event.values) if normalized is None else normalized
                    normalized[key] = fixed
            elif key in audiences:
                if not isinstance(value, bool):
                    raise InvalidEventError(
                        f"event {event.message_id!r}: audience {key!r} takes True (entered) or "
                        f"False (exited), got {value!r}; membership never goes back to never"
                    )
            else:
                raise InvalidEventError(
                    f"event {event.message_id!r}: unknown key {key!r}; known keys: "
                    f"{sorted(self.keys)}"
                )
        if normalized is None:
            return event
        return attrs.evolve(event, values=normalized)


def validate_trait_value(key: str, type_: TraitType, value: Any, message_id: str = "") -> Any:
    """Check one trait value against its type; returns it normalised (timestamps to UTC).

    ``None`` (an explicit clear) is valid for every type.
    """
    where = f"event {message_id!r}: trait {key!r}" if message_id else f"trait {key!r}"
    if value is None:
        return None
    if type_ is TraitType.BOOLEAN:
        if isinstance(value, bool):
            return value
    elif type_ is TraitType.INTEGER:
        if isinstance(value, int) and not isinstance(value, bool):
            if not INT64_MIN <= value <= INT64_MAX:
                raise UnsupportedValueError(
                    f"{where}: {value} does not fit a 64-bit integer; use a STRING trait"
                )
            return value
    elif type_ is TraitType.NUMBER:
        if isinstance(value, float):
            if not math.isfinite(value):
                raise UnsupportedValueError(
                    f"{where}: {value!r} cannot be stored (warehouses have no portable NaN or "
                    "infinity); send None to clear the trait"
                )
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > FLOAT_EXACT_INT:
                raise UnsupportedValueError(
                    f"{where}: {value} is past 2**53 and would lose digits as a NUMBER (a "
                    "double); declare the trait INTEGER"
                )
            return value
    elif type_ is TraitType.STRING:
        if isinstance(value, str):
            if "\x00" in value:
                raise UnsupportedValueError(
                    f"{where}: the string contains a NUL byte, which warehouses cannot store; "
                    "remove or escape it"
                )
            return value
    elif type_ is TraitType.TIMESTAMP:
        if isinstance(value, dt.datetime):
            return ensure_aware(value, where)
    elif type_ is TraitType.JSON:
        return _validate_json(where, value)
    raise InvalidEventError(
        f"{where} is {type_.name}, got {value!r} ({type(value).__name__})"
        + ("; a bool is not a number" if isinstance(value, bool) else "")
    )


def json_text(value: Any, where: str = "JSON value") -> str:
    """A JSON document as text (``json.dumps``); NaN, infinities and NUL are refused.

    >>> json_text({"a": "é"})
    '{"a": "é"}'
    """
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as err:
        raise UnsupportedValueError(
            f"{where}: value is not a JSON document ({err}); use dicts with string keys, "
            "lists, strings, finite numbers, booleans and None"
        ) from None
    if "\\u0000" in text:
        raise UnsupportedValueError(f"{where}: the JSON contains a NUL character; remove it")
    return text


def _validate_json(where: str, value: Any) -> Any:
    text = json_text(value, where)
    if json.loads(text) != value:
        raise UnsupportedValueError(
            f"{where}: {value!r} does not survive a JSON round trip (tuples or non-string "
            "keys?); pass lists and string keys"
        )
    return value


def ensure_aware(value: Any, what: str = "timestamp") -> dt.datetime:
    """``value`` as a UTC datetime; a naive datetime or a non-datetime is an error.

    >>> ensure_aware(dt.datetime(2024, 1, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))))
    datetime.datetime(2024, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """
    if not isinstance(value, dt.datetime):
        raise InvalidTimestampError(
            f"{what} must be a timezone-aware datetime, got {value!r} ({type(value).__name__})"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidTimestampError(
            f"{what} {value.isoformat()} has no time zone; pass an aware datetime, e.g. "
            "value.replace(tzinfo=datetime.UTC)"
        )
    return value.astimezone(dt.UTC)


def _check_id(kind: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidEventError(f"{kind} must be a non-empty string, got {value!r}")
    if "\x00" in value:
        raise UnsupportedValueError(f"{kind} {value!r} contains a NUL byte; remove it")


def _freeze_values(values: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(values, Mapping):
        raise InvalidEventError(f"event values must be a mapping of key -> value, got {values!r}")
    for key in values:
        if not isinstance(key, str):
            raise InvalidEventError(f"event value keys must be strings, got {key!r}")
    return MappingProxyType(dict(values))


def _event_timestamp(value: Any) -> dt.datetime:
    return ensure_aware(value, "event timestamp")


@attrs.frozen(slots=True)
class IdentifyEvent:
    """One identify call: some keys of one user set at ``timestamp``.

    Sparse: a key absent from ``values`` changes nothing; an explicit ``None`` for a trait
    clears it. ``received_at`` (when the warehouse got it) defaults to ``timestamp``. Both are
    timezone-aware and kept in UTC.
    """

    message_id: str = attrs.field()
    user_id: str = attrs.field()
    timestamp: dt.datetime = attrs.field(converter=_event_timestamp)
    values: Mapping[str, Any] = attrs.field(factory=dict, converter=_freeze_values)
    received_at: dt.datetime = attrs.field(default=None)

    @message_id.validator
    def _check_message_id(self, _: attrs.Attribute[str], value: str) -> None:
        _check_id("message_id", value)

    @user_id.validator
    def _check_user_id(self, _: attrs.Attribute[str], value: str) -> None:
        _check_id("user_id", value)

    def __attrs_post_init__(self) -> None:
        if self.received_at is None:
            object.__setattr__(self, "received_at", self.timestamp)
        else:
            object.__setattr__(
                self,
                "received_at",
                ensure_aware(self.received_at, f"event {self.message_id!r}: received_at"),
            )


@attrs.frozen(slots=True, eq=True)
class UserState:
    """A user's state at a moment: every synced audience and trait key of the Space.

    ``audiences[key]`` is ``True`` / ``False`` / ``None`` (see :class:`Membership`);
    ``traits[key]`` is the value or ``None``.
    """

    user_id: str
    traits: Mapping[str, Any]
    audiences: Mapping[str, bool | None]

    def membership(self, audience: str) -> Membership:
        """The tri-state membership of ``audience``."""
        try:
            return Membership.from_value(self.audiences[audience])
        except KeyError:
            raise InvalidEventError(
                f"unknown audience {audience!r}; known audiences: {sorted(self.audiences)}"
            ) from None

    @classmethod
    def empty(cls, space: Space, user_id: str) -> UserState:
        """The state of a user with no events: every key ``None``."""
        return cls(
            user_id,
            dict.fromkeys(space.trait_keys),
            dict.fromkeys(space.audience_keys),
        )
