"""Every docstring example in the package runs, as sqlglot's test_docs does."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import personas_warehouse

OPTIONAL = {"personas_warehouse.strategies"}  # needs hypothesis, the `testing` extra


def modules() -> list[str]:
    names = ["personas_warehouse"]
    for info in pkgutil.walk_packages(personas_warehouse.__path__, "personas_warehouse."):
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", modules())
def test_docstring_examples_run(name: str) -> None:
    if name in OPTIONAL:
        pytest.importorskip("hypothesis")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_readme_quick_start_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's Python example runs and prints what its comments say."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "README.md has no Python example"
    exec(compile(blocks[0], "README.md", "exec"), {})  # our own README, run as written
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "{'high_value_users': True}"
    assert out[1].startswith('CREATE TABLE IF NOT EXISTS "personas_default"."identifies"')
