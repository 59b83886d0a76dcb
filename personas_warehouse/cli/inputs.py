"""What the command line reads: time stamps, durations and computed results files.

Time stamps are ISO-8601 with a UTC offset; a time stamp without one is refused, never guessed:

>>> parse_timestamp("2024-05-01T12:00:00Z", "--at")
datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)
>>> parse_timestamp("2024-05-01T12:00", "--at")
Traceback (most recent call last):
...
personas_warehouse.cli.inputs.UsageError: --at 2024-05-01T12:00 has no UTC offset; add one, \
e.g. 2024-05-01T12:00Z or 2024-05-01T12:00+02:00
>>> parse_duration("1h30m")
datetime.timedelta(seconds=5400)

A results file holds one run's computed results (see docs/cli.md). JSON lines, one object per
user: ``{"user_id": "u1", "traits": {"ltv": 120.5}, "audiences": ["vip"]}``. CSV: a ``user_id``
column and one column per key.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from personas_warehouse.errors import InvalidEventError, PersonasWarehouseError
from personas_warehouse.model import Space, TraitType, ensure_aware, validate_trait_value
from personas_warehouse.sync import ComputedResults

__all__ = [
    "UsageError",
    "parse_duration",
    "parse_results",
    "parse_timestamp",
    "read_results",
]

_DURATION_PART: Final = re.compile(r"(\d+)\s*(d|h|m|s)")
_UNITS: Final = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_TRUE: Final = frozenset({"true", "t", "1", "yes", "y"})
_FALSE: Final = frozenset({"false", "f", "0", "no", "n", ""})
_LINE_FIELDS: Final = ("user_id", "traits", "audiences")


class UsageError(PersonasWarehouseError, ValueError):
    """A command-line argument or input file is wrong; the message says how to fix it."""


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------


def parse_timestamp(text: str, option: str = "time stamp") -> dt.datetime:
    """An ISO-8601 time stamp with a UTC offset (``Z`` or ``+hh:mm``), as a UTC datetime."""
    value = text.strip()
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not an ISO-8601 time stamp; write e.g. 2024-05-01T12:00Z"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise UsageError(
            f"{option} {text} has no UTC offset; add one, e.g. {value}Z or {value}+02:00"
        )
    return moment.astimezone(dt.UTC)


def parse_duration(text: str, option: str = "--every") -> dt.timedelta:
    """A positive duration such as ``1h``, ``15m``, ``1d`` or ``1h30m``."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise UsageError(
            f"{option} {text!r} is not a duration; write a number and a unit (d, h, m, s), "
            "e.g. 1h, 15m or 1h30m"
        )
    seconds = sum(int(number) * _UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        raise UsageError(f"{option} {text!r} must be longer than zero, e.g. 1h")
    return dt.timedelta(seconds=seconds)


# --------------------------------------------------------------------------------------------
# Results files
# --------------------------------------------------------------------------------------------


def _trait_value(space: Space, key: str, value: Any, where: str, *, from_text: bool) -> Any:
    """A trait value checked against its type; text (CSV cells, JSON strings) converted."""
    type_ = space.trait_types[key]
    if value is None:
        return None
    if type_ is TraitType.TIMESTAMP and isinstance(value, str):
        value = parse_timestamp(value, f"{where}: trait {key!r}")
    elif from_text:
        value = _from_cell(type_, key, value, where)
    try:
        return validate_trait_value(key, type_, value)
    except InvalidEventError as err:
        raise UsageError(f"{where}: {err}") from None


def _from_cell(type_: TraitType, key: str, cell: str, where: str) -> Any:
    text = cell.strip()
    try:
        if type_ is TraitType.BOOLEAN:
            lowered = text.lower()
            if lowered in _TRUE - {""}:
                return True
            if lowered in _FALSE - {""}:
                return False
            raise ValueError(cell)
        if type_ is TraitType.INTEGER:
            return int(text)
        if type_ is TraitType.NUMBER:
            number = float(text)
            return int(text) if re.fullmatch(r"[+-]?\d+", text) else number
        if type_ is TraitType.JSON:
            return json.loads(cell)
    except ValueError:
        raise UsageError(
            f"{where}: trait {key!r} is {type_.name}, the cell {cell!r} is not one; "
            "leave the cell empty to clear the trait"
        ) from None
    return cell


def _check_user(user_id: Any, where: str, seen: dict[str, str]) -> str:
    if not isinstance(user_id, str) or not user_id:
        raise UsageError(f"{where}: user_id must be a non-empty string, got {user_id!r}")
    if user_id in seen:
        raise UsageError(
            f"{where}: user {user_id!r} appears twice (first at {seen[user_id]}); "
            "give each user one line"
        )
    seen[user_id] = where
    return user_id


class _Collector:
    """Builds a :class:`ComputedResults` from per-user records, checking keys as it goes."""

    def __init__(self, space: Space, audiences: Sequence[str] | None, source: str) -> None:
        self.space = space
        self.source = source
        known = [a.key for a in space.audiences]
        computed = known if audiences is None else list(audiences)
        for key in computed:
            if key not in known:
                raise UsageError(
                    f"--audiences: {key!r} is not an audience of the space; known: {known}"
                )
        self.members: dict[str, set[str]] = {key: set() for key in computed}
        self.traits: dict[str, dict[str, Any]] = {}
        self.seen: dict[str, str] = {}

    def trait_key(self, key: str, where: str) -> None:
        if key not in self.space.trait_types:
            what = "an audience; list it under audiences" if self.space.is_audience(key) else ""
            raise UsageError(
                f"{where}: {key!r} is not a trait of the space"
                + (
                    f" (it is {what})"
                    if what
                    else f"; known traits: {list(self.space.trait_types)}"
                )
            )

    def audience_key(self, key: str, where: str) -> None:
        if key not in self.members:
            if self.space.is_audience(key):
                raise UsageError(
                    f"{where}: audience {key!r} is not computed this run (--audiences); add it "
                    "to --audiences or drop it from the file"
                )
            raise UsageError(
                f"{where}: {key!r} is not an audience of the space; known audiences: "
                f"{[a.key for a in self.space.audiences]}"
            )

    def member(self, user_id: str, key: str, where: str) -> None:
        self.audience_key(key, where)
        self.members[key].add(user_id)

    def results(self) -> ComputedResults:
        return ComputedResults(
            traits={user: values for user, values in self.traits.items() if values},
            audiences=self.members,
        )


def _json_records(lines: Iterable[str], collector: _Collector) -> None:
    for number, line in enumerate(lines, start=1):
        where = f"{collector.source}:{number}"
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise UsageError(
                f"{where}: not a JSON object ({err.msg}); write one object per line, e.g. "
                '{"user_id": "u1", "traits": {"ltv": 12.5}, "audiences": ["vip"]}'
            ) from None
        if not isinstance(record, dict):
            raise UsageError(f"{where}: expected a JSON object per line, got {record!r}")
        extra = [key for key in record if key not in _LINE_FIELDS]
        if extra:
            raise UsageError(
                f"{where}: unknown field {extra[0]!r}; a line has user_id, traits (an object "
                "of trait key -> value) and audiences (a list of the audiences the user is in)"
            )
        user_id = _check_user(record.get("user_id"), where, collector.seen)
        traits = record.get("traits", {})
        if not isinstance(traits, dict):
            raise UsageError(
                f"{where}: traits must be an object of trait key -> value, got {traits!r}"
            )
        values: dict[str, Any] = {}
        for key, value in traits.items():
            collector.trait_key(key, where)
            values[key] = _trait_value(collector.space, key, value, where, from_text=False)
        collector.traits[user_id] = values
        audiences = record.get("audiences", [])
        if isinstance(audiences, dict):
            for key, flag in audiences.items():
                if not isinstance(flag, bool):
                    raise UsageError(
                        f"{where}: audiences.{key} must be true (member) or false (not a "
                        f"member), got {flag!r}"
                    )
                collector.audience_key(key, where)
                if flag:
                    collector.member(user_id, key, where)
        elif isinstance(audiences, list):
            for key in audiences:
                if not isinstance(key, str):
                    raise UsageError(
                        f"{where}: audiences must list audience keys (strings), got {key!r}"
                    )
                collector.member(user_id, key, where)
        else:
            raise UsageError(
                f"{where}: audiences must be a list of the audiences the user is in, "
                f"got {audiences!r}"
            )


def _csv_records(text: str, collector: _Collector) -> None:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return
    where = f"{collector.source}:1"
    if "user_id" not in header:
        raise UsageError(
            f"{where}: the header has no user_id column; the first line names the columns: "
            "user_id, then trait and audience keys"
        )
    for key in header:
        if header.count(key) > 1:
            raise UsageError(f"{where}: column {key!r} appears twice in the header")
        if key != "user_id" and key not in collector.space.trait_types:
            if collector.space.is_audience(key):
                collector.audience_key(key, where)
                continue
            known = [t.key for t in collector.space.traits]
            known += [a.key for a in collector.space.audiences]
            raise UsageError(
                f"{where}: column {key!r} is not a trait or audience of the space; "
                f"known keys: {known}"
            )
    for number, row in enumerate(reader, start=2):
        where = f"{collector.source}:{number}"
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise UsageError(
                f"{where}: {len(row)} cells for {len(header)} columns; every row needs one cell "
                "per header column (empty for none)"
            )
        cells = dict(zip(header, row, strict=True))
        user_id = _check_user(cells.pop("user_id").strip(), where, collector.seen)
        values: dict[str, Any] = {}
        for key, cell in cells.items():
            if key in collector.space.trait_types:
                value = None if cell == "" else cell
                values[key] = _trait_value(collector.space, key, value, where, from_text=True)
                continue
            flag = cell.strip().lower()
            if flag in _TRUE:
                collector.member(user_id, key, where)
            elif flag not in _FALSE:
                raise UsageError(
                    f"{where}: audience {key!r} takes true or false (or empty for false), "
                    f"got {cell!r}"
                )
        collector.traits[user_id] = values


def parse_results(
    text: str,
    space: Space,
    *,
    fmt: str,
    source: str = "<results>",
    audiences: Sequence[str] | None = None,
) -> ComputedResults:
    """Computed results from the text of a results file (``fmt`` is ``jsonl`` or ``csv``).

    ``audiences`` names the audiences computed this run (default: every audience of the space);
    their member sets are the users listed in them, so a user listed in none has exited those
    audiences if they were in.

    >>> from personas_warehouse.model import Audience, ComputedTrait, Space, TraitType
    >>> space = Space(traits=[ComputedTrait("ltv", TraitType.NUMBER)],
    ...               audiences=[Audience("vip")])
    >>> text = '{"user_id": "u1", "traits": {"ltv": 12.5}, "audiences": ["vip"]}\\n'
    >>> results = parse_results(text + '{"user_id": "u2"}', space, fmt="jsonl")
    >>> dict(results.traits["u1"]), sorted(results.audiences["vip"])
    ({'ltv': 12.5}, ['u1'])
    >>> parse_results("user_id,ltv,vip\\nu1,abc,true\\n", space, fmt="csv", source="r.csv")
    Traceback (most recent call last):
    ...
    personas_warehouse.cli.inputs.UsageError: r.csv:2: trait 'ltv' is NUMBER, the cell 'abc' \
is not one; leave the cell empty to clear the trait
    """
    collector = _Collector(space, audiences, source)
    if fmt == "jsonl":
        _json_records(text.splitlines(), collector)
    elif fmt == "csv":
        _csv_records(text, collector)
    else:
        raise UsageError(f"unknown results format {fmt!r}; use jsonl or csv")
    return collector.results()


def results_format(path: str) -> str:
    """``jsonl`` or ``csv``, from the file name's extension."""
    suffix = Path(path).suffix.lower()
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise UsageError(
        f"--input {path}: cannot tell the format from the extension {suffix or '(none)'!r}; "
        "name the file .jsonl or .csv"
    )


def read_results(
    path: str | os.PathLike[str], space: Space, audiences: Sequence[str] | None = None
) -> ComputedResults:
    """Read a whole results file (``.jsonl`` or ``.csv``) before anything is written."""
    name = os.fspath(path)
    fmt = results_format(name)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(
            f"--input {name}: no such file; pass a .jsonl or .csv results file"
        ) from None
    except UnicodeDecodeError as err:
        raise UsageError(
            f"--input {name}: not UTF-8 text ({err.reason}); save it as UTF-8"
        ) from None
    except OSError as err:
        raise UsageError(f"--input {name}: cannot read it: {err.strerror or err}") from None
    return parse_results(text, space, fmt=fmt, source=name, audiences=audiences)


def iter_times(start: dt.datetime, end: dt.datetime, step: dt.timedelta) -> Iterator[dt.datetime]:
    """``start``, ``start + step``, ... up to and including ``end``."""
    start, end = ensure_aware(start, "--from"), ensure_aware(end, "--to")
    if end < start:
        raise UsageError(f"--to {end.isoformat()} is before --from {start.isoformat()}; swap them")
    moment = start
    while moment <= end:
        yield moment
        moment += step


def as_json(value: Any) -> Any:
    """A value made printable as JSON (time stamps as ISO-8601 text)."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {key: as_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_json(item) for item in value]
    return value
