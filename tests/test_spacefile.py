"""Space files: TOML in, Space out; every mistake names the file, the key and the form."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import personas_warehouse as pw
from personas_warehouse.cli.spacefile import dump, dumps, load_space, loads

FULL = """\
schema = "analytics"
audiences = ["high_value_users", "churn risk"]

[traits]
lifetime_value = "number"
orders = "INTEGER"
"2FA Enabled" = { type = "boolean" }
prefs = "json"

[sync]
users = false
identifies = true
excluded = ["prefs"]
"""


def test_full_space_file_gives_the_space_it_describes(tmp_path: Path) -> None:
    path = tmp_path / "space.toml"
    path.write_text(FULL, encoding="utf-8")
    space = load_space(path)
    assert space == pw.Space(
        traits=[
            pw.ComputedTrait("lifetime_value", pw.TraitType.NUMBER),
            pw.ComputedTrait("orders", pw.TraitType.INTEGER),
            pw.ComputedTrait("2FA Enabled", pw.TraitType.BOOLEAN),
            pw.ComputedTrait("prefs", pw.TraitType.JSON),
        ],
        audiences=[pw.Audience("high_value_users"), pw.Audience("churn risk")],
        schema="analytics",
        sync_users=False,
        sync_identifies=True,
        excluded={"prefs"},
    )
    assert space.keys == (
        "lifetime_value",
        "orders",
        "2FA Enabled",
        "high_value_users",
        "churn risk",
    )


def test_defaults_apply_to_an_almost_empty_file() -> None:
    space = loads('audiences = ["vip"]')
    assert space.schema == pw.DEFAULT_SCHEMA
    assert space.sync_users
    assert space.sync_identifies
    assert space.traits == ()
    assert space.excluded == frozenset()


BAD = [
    # (text, substrings every message must carry: the key and the expected form)
    ('schema = ""\n', ["schema", "non-empty schema name"]),
    ("schema = 3\n", ["schema", "non-empty schema name"]),
    ('audiences = "vip"\n', ["audiences", "expected a list of audience keys"]),
    ('audiences = ["vip", 3]\n', ["audiences[1]", "expected a list of audience keys"]),
    ('[traits]\nltv = "money"\n', ["traits.ltv", "unknown trait type 'money'", '"number"']),
    ("[traits]\nltv = 1\n", ["traits.ltv", "expected a trait type name"]),
    ('[traits]\nltv = { kind = "number" }\n', ["traits.ltv", "exactly one key, type"]),
    ('traits = ["ltv"]\n', ["traits", "expected a table of trait key = type"]),
    ('[traits]\nltv = "number"\naudiences = ["vip"]\n', ["traits.audiences", "before the first"]),
    ('[sync]\nusers = "yes"\n', ["sync.users", "expected true or false"]),
    ("[sync]\nexclude = []\n", ["sync.exclude", "[sync] takes only users, identifies, excluded"]),
    ('[sync]\nschema = "x"\n', ["sync.schema", "before the first"]),
    ('name = "x"\n', ["name", "a space file has only schema, audiences, traits, sync"]),
    ('audiences = ["vip"]\n[sync]\nexcluded = ["nope"]\n', ["excluded keys ['nope']"]),
    ('audiences = ["orderID", "order id"]\n', ["would share the column 'order_id'"]),
    ('audiences = ["vip"]\n[traits]\nvip = "string"\n', ["'vip' is defined twice"]),
    ("[sync]\nusers = false\nidentifies = false\n", ["must sync at least one table"]),
    ("audiences = [\n", ["not valid TOML", "at end of document"]),
    ("[traits]\nltv = number\n", ["not valid TOML", "line 2"]),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_each_mistake_names_file_key_and_form(text: str, expected: list[str]) -> None:
    with pytest.raises(pw.SpaceFileError) as caught:
        loads(text, "bad.toml")
    message = str(caught.value)
    assert message.startswith("bad.toml: ")
    for part in expected:
        assert part in message
    assert isinstance(caught.value, pw.PersonasWarehouseError)


def test_missing_file_and_non_utf8_file_are_space_file_errors(tmp_path: Path) -> None:
    with pytest.raises(pw.SpaceFileError, match=r"nope\.toml: no such file"):
        load_space(tmp_path / "nope.toml")
    latin = tmp_path / "latin.toml"
    latin.write_bytes('audiences = ["caf\xe9"]'.encode("latin-1"))
    with pytest.raises(pw.SpaceFileError, match="not UTF-8"):
        load_space(latin)


def test_dump_writes_a_file_that_loads_back(tmp_path: Path) -> None:
    space = loads(FULL)
    path = tmp_path / "out.toml"
    dump(space, path)
    assert load_space(path) == space
    assert [p.name for p in tmp_path.iterdir()] == ["out.toml"]  # no partial file left


keys = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=12,
).filter(lambda key: key.strip() != "")


@st.composite
def spaces(draw: st.DrawFn) -> pw.Space:
    chosen = draw(st.lists(keys, min_size=0, max_size=8, unique=True))
    split = draw(st.integers(0, len(chosen)))
    traits = [pw.ComputedTrait(k, draw(st.sampled_from(pw.TraitType))) for k in chosen[:split]]
    audiences = [pw.Audience(k) for k in chosen[split:]]
    excluded = draw(st.lists(st.sampled_from(chosen), unique=True)) if chosen else []
    sync_users = draw(st.booleans())
    try:
        return pw.Space(
            traits=traits,
            audiences=audiences,
            schema=draw(keys),
            sync_users=sync_users,
            sync_identifies=not sync_users or draw(st.booleans()),
            excluded=excluded,
        )
    except pw.InvalidSpaceError:  # colliding columns: not a space anyone can write
        from hypothesis import reject

        reject()


@settings(max_examples=300, deadline=None)
@given(spaces())
def test_dumps_then_loads_is_the_same_space_for_any_keys(space: pw.Space) -> None:
    assert loads(dumps(space)) == space


def test_example_space_file_in_the_repository_is_valid() -> None:
    space = load_space(Path(__file__).parent.parent / "examples" / "space.toml")
    assert "2FA Enabled" in space.trait_keys
    assert space.audience_keys == ("high_value_users", "churn_risk", "newsletter_readers")
