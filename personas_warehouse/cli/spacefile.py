"""Space files: a :class:`~personas_warehouse.model.Space` written as TOML.

The form (every key but ``traits`` / ``audiences`` is optional)::

    schema = "personas_default"          # the warehouse schema (default personas_default)
    audiences = ["high_value_users", "churn_risk"]

    [traits]                             # trait key = type, in column order
    lifetime_value = "number"
    plan = "string"
    "2FA Enabled" = "boolean"            # any key: quote it

    [sync]                               # selective sync
    users = true                         # write the users table (default true)
    identifies = true                    # write the identifies log (default true)
    excluded = ["plan"]                  # keys that are not synced at all

Trait types are ``boolean``, ``integer``, ``number``, ``string``, ``timestamp`` and ``json``.
A trait may also be written as a table, ``lifetime_value = { type = "number" }``.

Every mistake is a :class:`~personas_warehouse.errors.SpaceFileError` naming the file, the key
and the form expected:

>>> loads('schema = "s"\\naudiences = ["vip"]\\n[traits]\\nltv = "money"\\n', "space.toml")
Traceback (most recent call last):
...
personas_warehouse.errors.SpaceFileError: space.toml: traits.ltv: unknown trait type 'money'; \
expected one of "boolean", "integer", "number", "string", "timestamp", "json"

:func:`dumps` writes the same form back, and ``loads(dumps(space)) == space``:

>>> from personas_warehouse.model import Audience, ComputedTrait, Space, TraitType
>>> space = Space(traits=[ComputedTrait("ltv", TraitType.NUMBER)], audiences=[Audience("vip")])
>>> print(dumps(space), end="")
schema = "personas_default"
audiences = ["vip"]
<BLANKLINE>
[traits]
ltv = "number"
<BLANKLINE>
[sync]
users = true
identifies = true
excluded = []
>>> loads(dumps(space)) == space
True
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from personas_warehouse.errors import InvalidSpaceError, SpaceFileError
from personas_warehouse.model import DEFAULT_SCHEMA, Audience, ComputedTrait, Space, TraitType

__all__ = ["dump", "dumps", "load_space", "loads"]

_TOP_LEVEL: Final = ("schema", "audiences", "traits", "sync")
_SYNC_KEYS: Final = ("users", "identifies", "excluded")
_TYPE_NAMES: Final = ", ".join(f'"{t.value}"' for t in TraitType)
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
_SECTION_HINT: Final = (
    " (top-level keys such as `schema` and `audiences` must come before the first [table] "
    "header, or TOML puts them inside that table)"
)


def _fail(source: str, where: str, message: str) -> SpaceFileError:
    prefix = f"{source}: {where}: " if where else f"{source}: "
    return SpaceFileError(prefix + message)


def _key_list(source: str, where: str, value: Any, what: str) -> list[str]:
    expected = f'expected a list of {what} keys, e.g. {where.rsplit(".", 1)[-1]} = ["a", "b"]'
    if not isinstance(value, list):
        raise _fail(source, where, f"got {type(value).__name__} {value!r}; {expected}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise _fail(
                source,
                f"{where}[{index}]",
                f"got {type(item).__name__} {item!r}; {expected}",
            )
    return list(value)


def _trait_type(source: str, where: str, value: Any) -> TraitType:
    if isinstance(value, Mapping):
        extra = sorted(set(value) - {"type"})
        if extra or "type" not in value:
            raise _fail(
                source,
                where,
                f'a trait table takes exactly one key, type (e.g. {{ type = "number" }}), '
                f"got keys {sorted(value)}" + (_SECTION_HINT if extra else ""),
            )
        return _trait_type(source, f"{where}.type", value["type"])
    if not isinstance(value, str):
        raise _fail(
            source,
            where,
            f"got {type(value).__name__} {value!r}; expected a trait type name, one of "
            f"{_TYPE_NAMES}" + (_SECTION_HINT if isinstance(value, list | bool) else ""),
        )
    try:
        return TraitType(value.strip().lower())
    except ValueError:
        raise _fail(
            source, where, f"unknown trait type {value!r}; expected one of {_TYPE_NAMES}"
        ) from None


def _bool(source: str, where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(source, where, f"got {type(value).__name__} {value!r}; expected true or false")
    return value


def _space_from_document(document: Mapping[str, Any], source: str) -> Space:
    unknown = [key for key in document if key not in _TOP_LEVEL]
    if unknown:
        raise _fail(
            source,
            unknown[0],
            f"unknown key; a space file has only {', '.join(_TOP_LEVEL)}",
        )
    schema = document.get("schema", DEFAULT_SCHEMA)
    if not isinstance(schema, str) or not schema.strip():
        raise _fail(
            source,
            "schema",
            f'got {schema!r}; expected a non-empty schema name, e.g. schema = "{DEFAULT_SCHEMA}"',
        )
    audiences = _key_list(source, "audiences", document.get("audiences", []), "audience")
    traits_table = document.get("traits", {})
    if not isinstance(traits_table, Mapping):
        raise _fail(
            source,
            "traits",
            f"got {type(traits_table).__name__} {traits_table!r}; expected a table of "
            'trait key = type, e.g. [traits] then lifetime_value = "number"',
        )
    traits = [
        ComputedTrait(key, _trait_type(source, f"traits.{_toml_key(key)}", value))
        for key, value in traits_table.items()
    ]
    sync = document.get("sync", {})
    if not isinstance(sync, Mapping):
        raise _fail(
            source,
            "sync",
            f"got {type(sync).__name__} {sync!r}; expected a table: [sync] with users, "
            "identifies and excluded",
        )
    unknown = [key for key in sync if key not in _SYNC_KEYS]
    if unknown:
        raise _fail(
            source,
            f"sync.{_toml_key(unknown[0])}",
            f"unknown key; [sync] takes only {', '.join(_SYNC_KEYS)}"
            + (_SECTION_HINT if unknown[0] in _TOP_LEVEL else ""),
        )
    excluded = _key_list(source, "sync.excluded", sync.get("excluded", []), "trait or audience")
    try:
        return Space(
            traits=traits,
            audiences=[Audience(key) for key in audiences],
            schema=schema,
            sync_users=_bool(source, "sync.users", sync.get("users", True)),
            sync_identifies=_bool(source, "sync.identifies", sync.get("identifies", True)),
            excluded=excluded,
        )
    except SpaceFileError:
        raise
    except InvalidSpaceError as err:
        raise _fail(source, "", str(err)) from err


def loads(text: str, source: str = "<string>") -> Space:
    """The Space a space file's text describes; ``source`` names it in errors.

    >>> loads('audiences = ["vip"]').audience_keys
    ('vip',)
    >>> loads('[traits]\\nltv = "number"\\naudiences = ["vip"]', "s.toml")
    Traceback (most recent call last):
    ...
    personas_warehouse.errors.SpaceFileError: s.toml: traits.audiences: got list ['vip']; \
expected a trait type name, one of "boolean", "integer", "number", "string", "timestamp", \
"json" (top-level keys such as `schema` and `audiences` must come before the first [table] \
header, or TOML puts them inside that table)
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise _fail(source, "", f"not valid TOML: {err}; see docs/cli.md for the form") from err
    return _space_from_document(document, source)


def load_space(path: str | os.PathLike[str]) -> Space:
    """Read a space file. A missing or unreadable file is a :class:`SpaceFileError` too."""
    name = os.fspath(path)
    try:
        data = Path(name).read_bytes()
    except FileNotFoundError:
        raise _fail(name, "", "no such file; pass the path of a space file (TOML)") from None
    except OSError as err:
        raise _fail(name, "", f"cannot read the file: {err.strerror or err}") from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _fail(name, "", f"not UTF-8 text ({err}); save the file as UTF-8") from err
    return loads(text, name)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = ['"']
    for char in value:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _toml_key(key: str) -> str:
    """A key as TOML writes it: bare when it can be, quoted otherwise.

    >>> _toml_key("ltv"), _toml_key("2FA Enabled")
    ('ltv', '"2FA Enabled"')
    """
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_list(keys: list[str]) -> str:
    return "[" + ", ".join(_toml_string(key) for key in keys) + "]"


def dumps(space: Space) -> str:
    """The space file text of ``space`` (see the module docstring for the form)."""
    lines = [
        f"schema = {_toml_string(space.schema)}",
        f"audiences = {_toml_list([a.key for a in space.audiences])}",
        "",
        "[traits]",
        *(f"{_toml_key(t.key)} = {_toml_string(t.type.value)}" for t in space.traits),
        "",
        "[sync]",
        f"users = {'true' if space.sync_users else 'false'}",
        f"identifies = {'true' if space.sync_identifies else 'false'}",
        f"excluded = {_toml_list(sorted(space.excluded))}",
    ]
    return "\n".join(lines) + "\n"


def dump(space: Space, path: str | os.PathLike[str]) -> None:
    """Write ``space`` to a space file at ``path`` (replaced whole, never half-written)."""
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(dumps(space), encoding="utf-8")
    partial.replace(target)
