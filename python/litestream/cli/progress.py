"""A one-line progress display on a terminal (restore): bytes done of the total, percent and rate,
redrawn in place at most `max_rate` times a second and ended with a newline.

Only for people watching: the caller enables it when stderr is a terminal and the output is not JSON,
so scripts, pipes and logs never see it."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import IO

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(n: float) -> str:
    """1536 -> "1.5 KiB"; whole bytes below 1 KiB."""
    if n < 1024:
        return f"{int(n)} B"
    for unit in _UNITS[1:]:
        n /= 1024
        if n < 1024 or unit == _UNITS[-1]:
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def wanted(stream: IO[str], as_json: bool) -> bool:
    """Whether to show progress: not with -json, only on a terminal that can redraw a line."""
    if as_json or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


class ProgressLine:
    """update(phase, done, total) may be called from any thread; finish() ends the line."""

    def __init__(self, label: str, stream: IO[str] | None = None, max_rate: float = 10.0) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.interval = 1.0 / max_rate
        self._lock = threading.Lock()
        self._last_draw = float("-inf")
        self._phase = ""
        self._phase_start = 0.0
        self._state: tuple[str, int, int] | None = None
        self._drawn: tuple[str, int, int] | None = None

    def update(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        with self._lock:
            if phase != self._phase:
                self._phase, self._phase_start = phase, now
            self._state = (phase, done, total)
            # The first line of a phase and its end are always drawn; in between, at most max_rate a second.
            if self._drawn is not None and self._drawn[0] == phase and done < total \
                    and now - self._last_draw < self.interval:
                return
            self._draw(now)

    def finish(self) -> None:
        """Draw the last state if it was skipped, then end the line (also after a failure, so that an
        error message starts on a line of its own)."""
        with self._lock:
            if self._drawn is None:
                return
            if self._state != self._drawn:
                self._draw(time.monotonic())
            self._write("\n")
            self._drawn = None

    def _draw(self, now: float) -> None:
        assert self._state is not None
        phase, done, total = self._state
        elapsed = now - self._phase_start
        pct = 100 if total <= 0 else min(100, done * 100 // total)
        text = f"\r{self.label}: {phase} {format_bytes(done)} / {format_bytes(total)} ({pct}%)"
        if elapsed > 0 and done > 0:
            text += f", {format_bytes(done / elapsed)}/s"
        # Clear what a longer previous line left on the right.
        self._write(text + "\x1b[K")
        self._drawn = self._state
        self._last_draw = now

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed terminal must not fail the restore
