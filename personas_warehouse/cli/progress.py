"""A progress bar for terminals; nothing at all when stderr is not a terminal.

>>> import io
>>> stream = io.StringIO()
>>> bar = ProgressBar(stream, enabled=True, width=10)
>>> bar.update("events", 5, 10)
>>> bar.finish()
>>> stream.getvalue().endswith("\\r\\x1b[K")
True
>>> "[#####.....]  50% events 5/10" in stream.getvalue()
True
"""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """Draws ``[#####.....]  50% stage done/total`` on one line, at most 20 times a second."""

    def __init__(self, stream: TextIO, *, enabled: bool | None = None, width: int = 30) -> None:
        self.stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self.width = width
        self._last = 0.0
        self._drawn = False

    def update(self, stage: str, done: int, total: int) -> None:
        """Show ``done`` of ``total`` for ``stage`` (the last update of a stage always shows)."""
        if not self.enabled or total <= 0:  # nothing to measure (a stage with no rows)
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.05:
            return
        self._last = now
        fraction = min(done / total, 1.0)
        filled = round(self.width * fraction)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {fraction:4.0%} {stage} {done}/{total}\x1b[K")
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        """Clear the bar's line."""
        if self.enabled and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False
