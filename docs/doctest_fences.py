"""A griffe extension for the API pages: docstring examples (``>>>`` blocks) become code.

The docstrings are plain text with doctest blocks (they run as tests). Markdown would read a
block such as ``[('u1', True)]`` as a link; wrapped in a ``pycon`` fence it is shown as the
interpreter session it is.
"""

from __future__ import annotations

from typing import Any

import griffe

FENCE = "```"


def fence_doctests(text: str) -> str:
    """Wrap every doctest block (a ``>>>`` line up to the next blank line) in a pycon fence."""
    lines = text.split("\n")
    out: list[str] = []
    index = 0
    in_fence = False
    while index < len(lines):
        line = lines[index]
        stripped = line.lstrip()
        if stripped.startswith(FENCE):
            in_fence = not in_fence
        if in_fence or not stripped.startswith(">>>"):
            out.append(line)
            index += 1
            continue
        indent = line[: len(line) - len(stripped)]
        block: list[str] = []
        while index < len(lines) and lines[index].strip():
            block.append(lines[index])
            index += 1
        if out and out[-1].strip():
            out.append("")
        out.append(f"{indent}{FENCE}pycon")
        out.extend(block)
        out.append(f"{indent}{FENCE}")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fence the doctest blocks of every docstring griffe loads."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
