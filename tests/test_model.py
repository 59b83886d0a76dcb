"""Every validation rule of the domain model, with the error it raises."""

from __future__ import annotations

import datetime as dt
import math

import attrs
import pytest

import personas_warehouse as pw
from personas_warehouse.model import (
    INT64_MAX,
    INT64_MIN,
    ensure_aware,
    portable_stem,
    validate_trait_value,
)

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def space() -> pw.Space:
    return pw.Space(
        traits=[
            pw.ComputedTrait("flag", pw.TraitType.BOOLEAN),
            pw.ComputedTrait("count", pw.TraitType.INTEGER),
            pw.ComputedTrait("ltv", pw.TraitType.NUMBER),
            pw.ComputedTrait("name", pw.TraitType.STRING),
            pw.ComputedTrait("seen", pw.TraitType.TIMESTAMP),
            pw.ComputedTrait("doc", pw.TraitType.JSON),
        ],
        audiences=[pw.Audience("vip")],
    )


def event(**values: object) -> pw.IdentifyEvent:
    return pw.IdentifyEvent("m1", "u1", T0, values)


# --- Membership -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "membership"),
    [(True, pw.Membership.IN), (False, pw.Membership.EXITED), (None, pw.Membership.NEVER)],
)
def test_membership_round_trips_warehouse_values(
    value: bool | None, membership: pw.Membership
) -> None:
    assert pw.Membership.from_value(value) is membership
    assert membership.value is value


@pytest.mark.parametrize("value", [1, 0, "true", 1.0])
def test_membership_refuses_non_bools(value: object) -> None:
    with pytest.raises(pw.InvalidEventError, match="True, False or None"):
        pw.Membership.from_value(value)  # type: ignore[arg-type]


# --- Space ----------------------------------------------------------------------------------


def test_space_defaults_to_personas_default_schema() -> None:
    s = space()
    assert s.schema == "personas_default" == pw.DEFAULT_SCHEMA
    assert s.keys == ("flag", "count", "ltv", "name", "seen", "doc", "vip")
    assert s.sync_users
    assert s.sync_identifies


def test_duplicate_key_names_both_kinds() -> None:
    with pytest.raises(pw.InvalidSpaceError, match=r"'vip' is defined twice \(as trait and as"):
        pw.Space(traits=[pw.ComputedTrait("vip")], audiences=[pw.Audience("vip")])


def test_duplicate_trait_key() -> None:
    with pytest.raises(pw.InvalidSpaceError, match="defined twice"):
        pw.Space(traits=[pw.ComputedTrait("a"), pw.ComputedTrait("a", pw.TraitType.INTEGER)])


@pytest.mark.parametrize(
    ("first", "second"),
    [("orderID", "order id"), ("Sample Text", "sample___text"), ("2fa", "_2fa")],
)
def test_colliding_columns_name_both_keys(first: str, second: str) -> None:
    with pytest.raises(pw.ColumnCollisionError) as info:
        pw.Space(audiences=[pw.Audience(first), pw.Audience(second)])
    assert repr(first) in str(info.value)
    assert repr(second) in str(info.value)


def test_keys_without_ascii_letters_do_not_collide_with_each_other() -> None:
    s = pw.Space(audiences=[pw.Audience("日本"), pw.Audience("中文")])
    assert portable_stem("日本") == portable_stem("中文") == ""
    assert len(set(pw.column_names(s, "duckdb").values())) == 2


@pytest.mark.parametrize("key", ["", "   ", "a\x00b"])
def test_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(pw.InvalidSpaceError):
        pw.Audience(key)


def test_non_string_key_is_refused() -> None:
    with pytest.raises(pw.InvalidSpaceError, match="must be a string"):
        pw.ComputedTrait(3)  # type: ignore[arg-type]


def test_trait_type_must_be_a_trait_type() -> None:
    with pytest.raises(pw.InvalidSpaceError, match="BOOLEAN, INTEGER"):
        pw.ComputedTrait("x", "number")  # type: ignore[arg-type]


def test_definitions_must_be_the_right_class() -> None:
    with pytest.raises(pw.InvalidSpaceError, match="ComputedTrait"):
        pw.Space(traits=[pw.Audience("x")])  # type: ignore[list-item]
    with pytest.raises(pw.InvalidSpaceError, match="Audience"):
        pw.Space(audiences=[pw.ComputedTrait("x")])  # type: ignore[list-item]
    with pytest.raises(pw.InvalidSpaceError, match="string"):
        pw.Space(traits="abc")  # type: ignore[arg-type]


@pytest.mark.parametrize("schema", ["", "  ", "a\x00"])
def test_bad_schema_names(schema: str) -> None:
    with pytest.raises(pw.InvalidSpaceError, match="schema name"):
        pw.Space(schema=schema)


def test_selective_sync() -> None:
    s = pw.Space(
        traits=[pw.ComputedTrait("a"), pw.ComputedTrait("b")],
        audiences=[pw.Audience("c")],
        excluded={"b"},
        sync_identifies=False,
    )
    assert s.keys == ("a", "c")
    assert s.trait_types["b"] is pw.TraitType.STRING  # still defined, just not synced
    with pytest.raises(pw.InvalidSpaceError, match=r"excluded keys \['zz'\]"):
        pw.Space(traits=[pw.ComputedTrait("a")], excluded={"zz"})
    with pytest.raises(pw.InvalidSpaceError, match="at least one table"):
        pw.Space(sync_users=False, sync_identifies=False)


def test_space_is_frozen() -> None:
    s = space()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        s.schema = "x"  # type: ignore[misc]


# --- IdentifyEvent ----------------------------------------------------------------------------


def test_received_at_defaults_to_timestamp_and_times_are_utc() -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    e = pw.IdentifyEvent("m", "u", dt.datetime(2024, 1, 1, 14, tzinfo=plus2))
    assert e.received_at == e.timestamp == dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)
    assert e.timestamp.tzinfo is dt.UTC
    assert dict(e.values) == {}


def test_naive_timestamp_is_an_error_naming_the_field() -> None:
    with pytest.raises(pw.InvalidTimestampError, match=r"event timestamp .* has no time zone"):
        pw.IdentifyEvent("m", "u", dt.datetime(2024, 1, 1))
    with pytest.raises(pw.InvalidTimestampError, match=r"received_at .* has no time zone"):
        pw.IdentifyEvent("m", "u", T0, received_at=dt.datetime(2024, 1, 1))


def test_timestamp_must_be_a_datetime() -> None:
    with pytest.raises(pw.InvalidTimestampError, match="must be a timezone-aware datetime"):
        pw.IdentifyEvent("m", "u", "2024-01-01")  # type: ignore[arg-type]


@pytest.mark.parametrize(("message_id", "user_id"), [("", "u"), ("m", ""), (1, "u"), ("m", None)])
def test_ids_must_be_non_empty_strings(message_id: object, user_id: object) -> None:
    with pytest.raises(pw.InvalidEventError, match="must be a non-empty string"):
        pw.IdentifyEvent(message_id, user_id, T0)  # type: ignore[arg-type]


def test_nul_in_ids_is_refused() -> None:
    with pytest.raises(pw.UnsupportedValueError, match="NUL"):
        pw.IdentifyEvent("m\x00", "u", T0)


def test_values_are_copied_and_read_only() -> None:
    values: dict[str, object] = {"vip": True}
    e = pw.IdentifyEvent("m", "u", T0, values)
    values["vip"] = False
    assert e.values["vip"] is True
    with pytest.raises(TypeError):
        e.values["vip"] = False  # type: ignore[index]
    with pytest.raises(pw.InvalidEventError, match="mapping"):
        pw.IdentifyEvent("m", "u", T0, [("vip", True)])  # type: ignore[arg-type]
    with pytest.raises(pw.InvalidEventError, match="keys must be strings"):
        pw.IdentifyEvent("m", "u", T0, {1: True})  # type: ignore[dict-item]


# --- values against a Space ------------------------------------------------------------------


def test_valid_event_is_returned_unchanged() -> None:
    e = event(flag=True, count=3, ltv=1, name="x", seen=T0, doc={"a": [1, None]}, vip=False)
    assert space().validate_event(e) is e


def test_explicit_none_clears_any_trait() -> None:
    e = event(flag=None, count=None, ltv=None, name=None, seen=None, doc=None)
    assert space().validate_event(e) is e


def test_none_for_an_audience_is_an_error() -> None:
    with pytest.raises(pw.InvalidEventError, match="audience 'vip' takes True"):
        space().validate_event(event(vip=None))


@pytest.mark.parametrize("value", [1, "yes", 0])
def test_audience_value_must_be_bool(value: object) -> None:
    with pytest.raises(pw.InvalidEventError, match="audience 'vip'"):
        space().validate_event(event(vip=value))


def test_unknown_key_names_the_key_and_the_known_ones() -> None:
    with pytest.raises(pw.InvalidEventError, match=r"unknown key 'nope'; known keys: \['count'"):
        space().validate_event(event(nope=1))


def test_excluded_key_is_refused() -> None:
    s = pw.Space(audiences=[pw.Audience("a"), pw.Audience("b")], excluded={"b"})
    with pytest.raises(pw.InvalidEventError, match="'b' is excluded"):
        s.validate_event(event(b=True))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("count", True, "a bool is not a number"),
        ("count", 1.0, "is INTEGER"),
        ("count", INT64_MAX + 1, "64-bit"),
        ("count", INT64_MIN - 1, "64-bit"),
        ("ltv", False, "a bool is not a number"),
        ("ltv", math.nan, "NaN|nan"),
        ("ltv", math.inf, "inf"),
        ("ltv", -math.inf, "inf"),
        ("ltv", 2**53 + 1, "2\\*\\*53"),
        ("ltv", "1.5", "is NUMBER"),
        ("flag", 1, "is BOOLEAN"),
        ("name", 5, "is STRING"),
        ("name", "a\x00b", "NUL"),
        ("seen", "2024-01-01", "is TIMESTAMP"),
        ("seen", dt.datetime(2024, 1, 1), "no time zone"),
        ("doc", {1: "a"}, "round trip"),
        ("doc", {"a": math.nan}, "JSON"),
        ("doc", {"a": object()}, "JSON"),
        ("doc", ("a", "b"), "round trip"),
        ("doc", {"a": "\x00"}, "NUL"),
    ],
)
def test_trait_value_must_fit_its_type(key: str, value: object, message: str) -> None:
    with pytest.raises(pw.PersonasWarehouseError, match=message) as info:
        space().validate_event(event(**{key: value}))
    assert isinstance(info.value, ValueError)
    assert repr(key) in str(info.value)


def test_int64_bounds_are_accepted() -> None:
    for value in (INT64_MIN, INT64_MAX, 0):
        assert validate_trait_value("c", pw.TraitType.INTEGER, value) == value


def test_number_takes_ints_and_floats() -> None:
    assert validate_trait_value("n", pw.TraitType.NUMBER, 2**53) == 2**53
    assert validate_trait_value("n", pw.TraitType.NUMBER, -0.5) == -0.5


def test_timestamp_values_are_normalised_to_utc() -> None:
    plus5 = dt.timezone(dt.timedelta(hours=5))
    e = space().validate_event(event(seen=dt.datetime(2024, 1, 1, 5, tzinfo=plus5)))
    assert e.values["seen"] == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert e.values["seen"].tzinfo is dt.UTC


def test_ensure_aware_rejects_naive_and_converts() -> None:
    with pytest.raises(pw.InvalidTimestampError, match="ts 2024-01-01T00:00:00 has no time zone"):
        ensure_aware(dt.datetime(2024, 1, 1), "ts")
    assert ensure_aware(T0) == T0


# --- UserState ------------------------------------------------------------------------------


def test_user_state_membership_and_empty() -> None:
    s = space()
    state = pw.UserState.empty(s, "u1")
    assert state.audiences == {"vip": None}
    assert state.traits == dict.fromkeys(["flag", "count", "ltv", "name", "seen", "doc"])
    assert state.membership("vip") is pw.Membership.NEVER
    assert pw.UserState("u1", {}, {"vip": False}).membership("vip") is pw.Membership.EXITED
    with pytest.raises(pw.InvalidEventError, match="unknown audience 'x'"):
        state.membership("x")
    assert state == pw.UserState.empty(s, "u1")
    assert state != pw.UserState.empty(s, "u2")


def test_every_error_derives_from_the_root() -> None:
    for name in pw.__all__:
        obj = getattr(pw, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, pw.PersonasWarehouseError), name
