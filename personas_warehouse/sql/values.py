"""The value layer: Python values <-> SQL literals and rows read back, per warehouse, lossless.

Writing (:func:`literal`, :func:`timestamp_literal`) builds sqlglot trees; the renderer escapes
strings for the dialect (backslash dialects included). Reading (:func:`decode_value`,
:func:`decode_timestamp`) turns what a driver returns into the Python value of a trait type.

The rules, each asked of the warehouse's capabilities and column types, never of its name:

* an instant is written as UTC. Where the system timestamp column is text (SQLite) it is
  :func:`timestamp_text` (fixed width, microseconds, ``+00:00``: text order is time order) with
  no CAST; without a time-zone type (MySQL ``DATETIME``) it is naive UTC text; a column type
  without a zone (ClickHouse ``DateTime64(6, 'UTC')``) gets naive UTC text in a CAST; any other
  gets the text with ``+00:00`` in a CAST to the column type;
* JSON is ``json.dumps`` (NaN refused) as a string, parsed by the dialect's parse function
  where the column has a JSON type (never ``exp.convert`` of a dict, which makes a MAP);
* a NUMBER is a float literal in exponent form (``1.5e0``), which every engine reads as a double
  correctly rounded; an INTEGER is its digits;
* a BOOLEAN is ``TRUE``/``FALSE``, or ``1``/``0`` where audiences are a ``BIT`` column;
* ``None`` is ``NULL`` (cast to the column type where a relation needs typed columns);
* NUL bytes, NaN and infinities are refused with :class:`UnsupportedValueError` (the model
  refuses them first; this layer checks again so nothing renders as NULL or a bare identifier).

>>> import datetime as dt
>>> from personas_warehouse.sql.render import render
>>> moment = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
>>> render(literal("postgres", TraitType.TIMESTAMP, moment), "postgres")
"CAST('2024-05-01 10:00:00.000000+00:00' AS TIMESTAMPTZ)"
>>> render(literal("sqlite", TraitType.TIMESTAMP, moment), "sqlite")
"'2024-05-01 10:00:00.000000+00:00'"
>>> render(literal("mysql", TraitType.STRING, "it's a\\\\b"), "mysql")
"'it''s a\\\\\\\\b'"
>>> render(literal("duckdb", TraitType.JSON, {"a": [1, 2.5]}), "duckdb")
'JSON(\\'{"a": [1, 2.5]}\\')'
>>> decode_value("mysql", TraitType.BOOLEAN, 1)
True
>>> decode_value("sqlite", TraitType.TIMESTAMP, "2024-05-01 10:00:00.000000+00:00")
datetime.datetime(2024, 5, 1, 10, 0, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import json
import math
from typing import Any, Final

from sqlglot import exp

from personas_warehouse.errors import InvalidEventError, UnsupportedValueError
from personas_warehouse.model import TraitType, ensure_aware, json_text
from personas_warehouse.warehouses import Capabilities, capabilities

__all__ = [
    "decode_timestamp",
    "decode_value",
    "encode_for_max",
    "finish_max",
    "json_text",
    "literal",
    "null_literal",
    "parameter_value",
    "read_column",
    "timestamp_from_text",
    "timestamp_literal",
    "timestamp_text",
    "timestamp_text_literal",
]

_JSON_EXACT_INT: Final = 2**53
_NAIVE_FORMAT: Final = "%Y-%m-%d %H:%M:%S.%f"
_ZONED_TYPES: Final = frozenset({exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.TIMESTAMPLTZ})
_NATIVE_JSON_TYPES: Final = frozenset(
    {
        exp.DataType.Type.JSON,
        exp.DataType.Type.JSONB,
        exp.DataType.Type.VARIANT,
        exp.DataType.Type.SUPER,
    }
)


# --------------------------------------------------------------------------------------------
# What the column types are (parsed once per warehouse and type name)
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _parsed_type(type_name: str, dialect: str) -> exp.DataType:
    return exp.DataType.build(type_name, dialect=dialect)


def _type_of(caps: Capabilities, type_name: str) -> exp.DataType:
    return _parsed_type(type_name, caps.sqlglot_dialect)


@functools.lru_cache(maxsize=512)
def _is_text_type(type_name: str, dialect: str) -> bool:
    return _parsed_type(type_name, dialect).is_type(*exp.DataType.TEXT_TYPES)


def _is_text(caps: Capabilities, type_name: str) -> bool:
    return _is_text_type(type_name, caps.sqlglot_dialect)


def timestamps_are_text(caps: Capabilities) -> bool:
    """Whether instants are stored as :func:`timestamp_text` (no time type, no CASTs)."""
    return _is_text(caps, caps.timestamp_type)


def _column_type(caps: Capabilities, trait_type: TraitType | None) -> str:
    if trait_type is None:
        return caps.timestamp_type
    return caps.column_types[trait_type]


def json_is_native(caps: Capabilities) -> bool:
    """Whether JSON traits live in a JSON-typed column (parsed on write, serialised on read)."""
    return _type_of(caps, caps.column_types[TraitType.JSON]).this in _NATIVE_JSON_TYPES


def _boolean_is_bit(caps: Capabilities) -> bool:
    return _type_of(caps, caps.boolean_type).this is exp.DataType.Type.BIT


@functools.lru_cache(maxsize=512)
def _timestamp_mode(type_name: str, dialect: str, timezone_type: bool) -> str:
    """``text`` (fixed-width text, no CAST), ``naive`` (naive UTC text, no CAST), ``cast-naive``
    or ``cast-zoned``."""
    if _is_text_type(type_name, dialect):
        return "text"
    if not timezone_type:
        return "naive"
    zoned = _parsed_type(type_name, dialect).this in _ZONED_TYPES
    return "cast-zoned" if zoned else "cast-naive"


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def timestamp_text(value: dt.datetime) -> str:
    """The fixed-width UTC text of an instant: ``YYYY-MM-DD HH:MM:SS.ffffff+00:00``.

    Every value has the same width and zone, so text order is time order.

    >>> timestamp_text(dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
    '2024-01-02 03:04:05.000000+00:00'
    """
    return ensure_aware(value).isoformat(sep=" ", timespec="microseconds")


def _naive_text(value: dt.datetime) -> str:
    return ensure_aware(value).strftime(_NAIVE_FORMAT)


def timestamp_literal(
    dialect: str | Capabilities, value: dt.datetime, type_name: str | None = None
) -> exp.Expr:
    """An instant as a literal for a column of ``type_name`` (default: the system timestamps).

    >>> render_ = __import__("personas_warehouse.sql.render", fromlist=["render"]).render
    >>> render_(timestamp_literal("clickhouse", dt.datetime(2024, 1, 1, tzinfo=dt.UTC)),
    ...         "clickhouse")
    "CAST('2024-01-01 00:00:00.000000' AS DateTime64(6, 'UTC'))"
    """
    caps = capabilities(dialect)
    type_name = type_name or caps.timestamp_type
    mode = _timestamp_mode(type_name, caps.sqlglot_dialect, caps.timezone_type)
    if mode == "text":
        return exp.Literal.string(timestamp_text(value))
    if mode == "naive":
        return exp.Literal.string(_naive_text(value))
    text = timestamp_text(value) if mode == "cast-zoned" else _naive_text(value)
    # the parsed type is shared, not copied: rendering copies the whole tree anyway
    return exp.Cast(this=exp.Literal.string(text), to=_type_of(caps, type_name))


def timestamp_text_literal(dialect: str | Capabilities, value: dt.datetime) -> exp.Literal:
    """The text of a system timestamp as :func:`timestamp_literal` writes it, without a CAST.

    For a relation of many rows whose column :func:`timestamp_from_text` types once (a CAST
    per row costs more to build and render than the text itself).

    >>> from personas_warehouse.sql.render import render
    >>> at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    >>> render(timestamp_text_literal("clickhouse", at), "clickhouse")
    "'2024-01-01 00:00:00.000000'"
    >>> render(timestamp_text_literal("postgres", at), "postgres")
    "'2024-01-01 00:00:00.000000+00:00'"
    """
    caps = capabilities(dialect)
    mode = _timestamp_mode(caps.timestamp_type, caps.sqlglot_dialect, caps.timezone_type)
    text = timestamp_text(value) if mode in ("text", "cast-zoned") else _naive_text(value)
    return exp.Literal.string(text)


def timestamp_from_text(dialect: str | Capabilities, expression: exp.Expr) -> exp.Expr:
    """``expression``, text as :func:`timestamp_text_literal` writes it, typed as the system
    timestamps: a CAST to ``timestamp_type``, except where instants are text (SQLite).

    >>> from personas_warehouse.sql.render import render
    >>> render(timestamp_from_text("mysql", exp.column("t")), "mysql")
    'CAST(`t` AS DATETIME(6))'
    >>> render(timestamp_from_text("sqlite", exp.column("t")), "sqlite")
    '"t"'
    """
    caps = capabilities(dialect)
    if timestamps_are_text(caps):
        return expression
    return exp.Cast(this=expression, to=_type_of(caps, caps.timestamp_type).copy())


def _string(value: str) -> exp.Literal:
    if not isinstance(value, str):
        raise InvalidEventError(f"expected a string, got {value!r} ({type(value).__name__})")
    if "\x00" in value:
        raise UnsupportedValueError(
            f"the string {value[:40]!r} contains a NUL byte, which warehouses cannot store; "
            "remove or escape it"
        )
    return exp.Literal.string(value)


def _float_literals_exact(caps: Capabilities) -> bool:
    """Whether the engine reads a decimal float literal correctly rounded.

    SQLite's parser is not (about 1 in 200 random doubles come back one ulp off); it is the
    engine that stores instants as text, which is what this asks. (A capability flag of its
    own would say it better; see docs/sql.md.)
    """
    return not timestamps_are_text(caps)


def _exact_binary(number: float) -> exp.Expr:
    """``number`` as integer arithmetic that is exact in IEEE doubles: m * 1.0 / 2^k ..."""
    fraction, exponent = math.frexp(number)
    mantissa = int(math.ldexp(fraction, 53))
    shift = exponent - 53
    while mantissa and mantissa % 2 == 0 and shift < 0:
        mantissa //= 2
        shift += 1
    value: exp.Expr = exp.Mul(
        this=exp.Literal.number(str(mantissa)), expression=exp.Literal.number("1.0")
    )
    step = 62  # 2**62 is an exact integer literal everywhere
    while shift != 0:
        k = min(abs(shift), step)
        power = exp.Literal.number(str(2**k))
        if shift < 0:
            value = exp.Div(this=value, expression=power, typed=True)
            shift += k
        else:
            value = exp.Mul(this=value, expression=power)
            shift -= k
    return exp.paren(value)


def _number(caps: Capabilities, value: float) -> exp.Expr:
    number = float(value)
    if not math.isfinite(number):
        raise UnsupportedValueError(
            f"{value!r} cannot be stored (warehouses have no portable NaN or infinity); "
            "send None to clear the trait"
        )
    text = repr(number)
    if not _float_literals_exact(caps):
        if number.is_integer() and abs(number) <= 2**53:
            return exp.Literal.number(f"{int(number)}.0")  # -0.0 reads back as 0.0
        # each step halves or doubles a double: exact, so the engine gets the same bits
        return _exact_binary(number)
    # repr is the shortest text that round-trips; an exponent makes every engine read a
    # double (DuckDB and Postgres read 0.1 as a DECIMAL / NUMERIC otherwise)
    if "e" not in text:
        text += "e0"
    return exp.Literal.number(text)


def _integer(value: int) -> exp.Expr:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEventError(f"expected an integer, got {value!r} ({type(value).__name__})")
    if value < 0:
        # -(2**63) has no positive twin: write it as the difference of two in-range numbers
        if value == -(2**63):
            return exp.Sub(
                this=exp.Literal.number(str(value + 1)), expression=exp.Literal.number("1")
            )
        return exp.Literal.number(str(value))
    return exp.Literal.number(str(value))


def _boolean(caps: Capabilities, value: bool) -> exp.Expr:
    if not isinstance(value, bool):
        raise InvalidEventError(f"expected True or False, got {value!r} ({type(value).__name__})")
    if _boolean_is_bit(caps):
        return exp.Literal.number("1" if value else "0")
    return exp.Boolean(this=value)


def null_literal(dialect: str | Capabilities, trait_type: TraitType | None = None) -> exp.Expr:
    """``NULL`` typed for a column of ``trait_type`` (``None``: a system timestamp).

    Untyped where instants are text (SQLite: no CASTs there).

    >>> from personas_warehouse.sql.render import render
    >>> render(null_literal("postgres", TraitType.BOOLEAN), "postgres")
    'CAST(NULL AS BOOLEAN)'
    >>> render(null_literal("sqlite", TraitType.BOOLEAN), "sqlite")
    'NULL'
    """
    caps = capabilities(dialect)
    if timestamps_are_text(caps):
        return exp.null()
    return exp.cast(exp.null(), _type_of(caps, _column_type(caps, trait_type)).copy())


def literal(dialect: str | Capabilities, trait_type: TraitType, value: Any) -> exp.Expr:
    """The SQL literal of a trait value for its column (``None`` is ``NULL``).

    >>> from personas_warehouse.sql.render import render
    >>> render(literal("duckdb", TraitType.NUMBER, 0.1), "duckdb")
    '0.1e0'
    >>> render(literal("tsql", TraitType.BOOLEAN, True), "tsql")
    '1'
    """
    caps = capabilities(dialect)
    if value is None:
        return exp.null()
    if trait_type is TraitType.BOOLEAN:
        return _boolean(caps, value)
    if trait_type is TraitType.INTEGER:
        return _integer(value)
    if trait_type is TraitType.NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidEventError(f"expected a number, got {value!r} ({type(value).__name__})")
        return _number(caps, value)
    if trait_type is TraitType.STRING:
        return _string(value)
    if trait_type is TraitType.TIMESTAMP:
        return timestamp_literal(caps, value, caps.column_types[TraitType.TIMESTAMP])
    if trait_type is TraitType.JSON:
        text = exp.Literal.string(json_text(value))
        if not json_is_native(caps):
            return text
        return _parse_json(caps, text)
    raise InvalidEventError(f"unknown trait type {trait_type!r}")  # pragma: no cover


def _parse_json(caps: Capabilities, text: exp.Expr) -> exp.Expr:
    """The dialect's parse of JSON text into the JSON column type."""
    parsed = exp.ParseJSON(this=text)
    rendered = parsed.sql(dialect=caps.sqlglot_dialect)
    if rendered.upper().startswith("CAST("):
        # the dialect parses by casting (Postgres): cast to the column's own type (JSONB)
        return exp.cast(text, _type_of(caps, caps.column_types[TraitType.JSON]).copy())
    return parsed


def parameter_value(dialect: str | Capabilities, trait_type: TraitType | None, value: Any) -> Any:
    """A value as a DB-API parameter for a column of ``trait_type`` (``None``: system timestamp).

    Instants: :func:`timestamp_text` where they are text, naive UTC where the warehouse has no
    zone type, aware UTC otherwise. JSON: its text. Booleans stay booleans.

    >>> parameter_value("mysql", None, dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    datetime.datetime(2024, 1, 1, 0, 0)
    """
    caps = capabilities(dialect)
    if value is None:
        return None
    if trait_type is None or trait_type is TraitType.TIMESTAMP:
        type_name = _column_type(caps, trait_type)
        moment = ensure_aware(value)
        if _is_text(caps, type_name):
            return timestamp_text(moment)
        if not caps.timezone_type or _type_of(caps, type_name).this not in _ZONED_TYPES:
            return moment.replace(tzinfo=None)
        return moment
    if trait_type is TraitType.JSON:
        return json_text(value)
    if trait_type is TraitType.NUMBER:
        return float(value)
    if trait_type is TraitType.BOOLEAN and _boolean_is_bit(caps):
        return int(value)
    return value


# --------------------------------------------------------------------------------------------
# Aggregating values portably (MAX over BOOLEAN / JSON does not exist everywhere)
# --------------------------------------------------------------------------------------------


def encode_for_max(
    dialect: str | Capabilities, trait_type: TraitType, column: exp.Expr
) -> exp.Expr:
    """``column`` as a value every engine can ``MAX`` (booleans as 1/0, JSON as text)."""
    caps = capabilities(dialect)
    if trait_type is TraitType.BOOLEAN:
        truth = exp.EQ(this=column, expression=exp.Literal.number(1))
        test = truth if _boolean_is_bit(caps) else column
        return exp.Case(
            ifs=[
                exp.If(this=test, true=exp.Literal.number(1)),
                exp.If(this=exp.Not(this=test), true=exp.Literal.number(0)),
            ]
        )
    if trait_type is TraitType.JSON and json_is_native(caps):
        return exp.cast(column, _type_of(caps, caps.string_type).copy())
    return column


def finish_max(
    dialect: str | Capabilities, trait_type: TraitType, aggregated: exp.Expr
) -> exp.Expr:
    """Turn ``MAX(encode_for_max(...))`` back into the column's type."""
    caps = capabilities(dialect)
    if trait_type is TraitType.BOOLEAN:
        return exp.Case(
            ifs=[
                exp.If(
                    this=exp.EQ(this=aggregated.copy(), expression=exp.Literal.number(1)),
                    true=_boolean(caps, True),
                ),
                exp.If(
                    this=exp.EQ(this=aggregated.copy(), expression=exp.Literal.number(0)),
                    true=_boolean(caps, False),
                ),
            ]
        )
    if trait_type is TraitType.JSON and json_is_native(caps):
        return _parse_json(caps, aggregated)
    return aggregated


def read_column(
    dialect: str | Capabilities, trait_type: TraitType | None, column: exp.Expr
) -> exp.Expr:
    """How to select a column so that :func:`decode_value` can read what comes back.

    Native JSON columns are read as their text (drivers otherwise parse some of them, and a
    JSON string would be indistinguishable from text); everything else is read as it is.
    """
    caps = capabilities(dialect)
    if trait_type is TraitType.JSON and json_is_native(caps):
        return exp.cast(column, _type_of(caps, caps.string_type).copy())
    return column


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def decode_timestamp(dialect: str | Capabilities, raw: Any) -> dt.datetime | None:
    """An instant read back: aware UTC. Naive values are UTC (how this layer writes them).

    >>> decode_timestamp("clickhouse", dt.datetime(2024, 1, 1))
    datetime.datetime(2024, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """
    capabilities(dialect)
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = dt.datetime.fromisoformat(raw.strip())
        except ValueError as err:
            raise InvalidEventError(f"cannot read {raw!r} as a timestamp: {err}") from None
    if hasattr(raw, "to_pydatetime"):  # pandas / numpy timestamps from some drivers
        raw = raw.to_pydatetime()
    if not isinstance(raw, dt.datetime):
        raise InvalidEventError(f"cannot read {raw!r} ({type(raw).__name__}) as a timestamp")
    if raw.tzinfo is None or raw.utcoffset() is None:
        return raw.replace(tzinfo=dt.UTC)
    return raw.astimezone(dt.UTC)


def decode_value(dialect: str | Capabilities, trait_type: TraitType | None, raw: Any) -> Any:
    """A value read back from a warehouse as the Python value of ``trait_type``.

    ``trait_type=None`` reads an audience (``True``/``False``/``None``). Booleans may come
    back as 0/1 (MySQL, SQLite), decimals as ``Decimal``, JSON as text (see
    :func:`read_column`) or already parsed, instants naive (UTC) or as ISO text. JSON integers
    past ±2**53 are read as floats (see :func:`_json_int`).

    >>> decode_value("postgres", TraitType.JSON, '{"a": 1}')
    {'a': 1}
    >>> decode_value("duckdb", None, False)
    False
    """
    capabilities(dialect)
    if raw is None:
        return None
    if trait_type is None or trait_type is TraitType.BOOLEAN:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int | decimal.Decimal) and raw in (0, 1):
            return bool(raw)
        if isinstance(raw, str) and raw.lower() in {"true", "false", "1", "0"}:
            return raw.lower() in {"true", "1"}
        raise InvalidEventError(f"cannot read {raw!r} ({type(raw).__name__}) as a boolean")
    if trait_type is TraitType.INTEGER:
        if isinstance(raw, bool):
            raise InvalidEventError(f"cannot read the boolean {raw!r} as an integer")
        return int(raw)
    if trait_type is TraitType.NUMBER:
        return float(raw)
    if trait_type is TraitType.STRING:
        if isinstance(raw, bytes | bytearray | memoryview):
            return bytes(raw).decode("utf-8")
        return str(raw)
    if trait_type is TraitType.TIMESTAMP:
        return decode_timestamp(dialect, raw)
    if trait_type is TraitType.JSON:
        if isinstance(raw, bytes | bytearray | memoryview):
            raw = bytes(raw).decode("utf-8")
        if isinstance(raw, str):
            return json.loads(raw, parse_int=_json_int)
        return raw
    raise InvalidEventError(f"unknown trait type {trait_type!r}")  # pragma: no cover


def _json_int(text: str) -> int | float:
    """A JSON integer; past ±2**53 (I-JSON's limit) a float: Postgres JSONB prints the double
    1e308 as a 309-digit integer, which is that double again only as a float."""
    number = int(text)
    return number if abs(number) <= _JSON_EXACT_INT else float(number)
