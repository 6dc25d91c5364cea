"""The curses painter of ``lanco top``: it samples, asks lanco.views.top for the frame, and paints its text.

It holds no layout of its own, so that what the screen shows is what the golden tests of lanco.views.top check.
Painting goes through curses' virtual screen (erase, then one doupdate), which sends only the cells that
changed: no flicker, even with hundreds of rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from lanco.views.top import SORT_KEYS, Frame, Sample, build_frame, frame_lines

if TYPE_CHECKING:
    import curses

FOOTER = "q quit  c cpu  m memory  p pids  n name  ↑↓ PgUp PgDn scroll"
FIRST_REFRESH_S = 0.5
"""The first frame has no CPU % (it needs two samples): the second comes sooner than the delay."""


class Screen:
    def __init__(self, window: curses.window, sampler: Callable[[], Sample], delay: float, sort: str) -> None:
        self.window = window
        self.sampler = sampler
        self.delay = delay
        self.sort = sort
        self.scroll = 0
        self.previous: Sample | None = None
        self.current = sampler()
        self.history_before: dict[str, tuple[float, ...]] = {}
        self.frame = self._build()

    def _build(self) -> Frame:
        return build_frame(self.previous, self.current, sort=self.sort, history=self.history_before)

    def refresh_sample(self) -> None:
        self.history_before = dict(self.frame.history)
        self.previous, self.current = self.current, self.sampler()
        self.frame = self._build()

    def resort(self, sort: str) -> None:
        self.sort = sort
        self.frame = self._build()

    def paint(self) -> None:
        import curses

        window = self.window
        height, width = window.getmaxyx()
        text = frame_lines(self.frame, width=max(1, width - 1))
        body = max(0, height - 3)
        self.scroll = max(0, min(self.scroll, len(text.rows) - body))
        window.erase()
        _put(window, 0, text.summary, width, curses.A_BOLD)
        _put(window, 1, text.header, width, curses.A_REVERSE)
        visible = text.rows[self.scroll:self.scroll + body]
        for index, row in enumerate(visible):
            _put(window, 2 + index, row, width, curses.A_NORMAL)
        if not text.rows and body:
            _put(window, 2, "(no running task)", width, curses.A_DIM)
        hidden_below = len(text.rows) - self.scroll - len(visible)
        footer = FOOTER
        if self.scroll or hidden_below > 0:
            footer = f"rows {self.scroll + 1}-{self.scroll + len(visible)} of {len(text.rows)}  " + footer
        if height >= 3:
            _put(window, height - 1, footer, width, curses.A_REVERSE)
        window.noutrefresh()
        curses.doupdate()

    def page(self) -> int:
        return max(1, self.window.getmaxyx()[0] - 3)

    def handle(self, key: int) -> bool:
        """Act on one key; False when it asks to quit."""
        import curses

        if key in (ord("q"), ord("Q"), 27):
            return False
        char = chr(key) if 0 <= key < 256 else ""
        if char.lower() in SORT_KEYS:
            self.resort(SORT_KEYS[char.lower()])
        elif key in (curses.KEY_DOWN, ord("j")):
            self.scroll += 1
        elif key in (curses.KEY_UP, ord("k")):
            self.scroll = max(0, self.scroll - 1)
        elif key in (curses.KEY_NPAGE, ord(" ")):
            self.scroll += self.page()
        elif key == curses.KEY_PPAGE:
            self.scroll = max(0, self.scroll - self.page())
        elif key == curses.KEY_HOME:
            self.scroll = 0
        elif key == curses.KEY_END:
            self.scroll = len(self.frame.rows)
        elif key == curses.KEY_RESIZE:
            curses.update_lines_cols()
        return True


def _put(window: curses.window, y: int, text: str, width: int, attribute: int) -> None:
    import curses

    try:
        # One column short of the edge: writing the bottom-right cell makes curses raise.
        window.addnstr(y, 0, text.ljust(width - 1), max(0, width - 1), attribute)
    except curses.error:
        pass  # a terminal shrunk between getmaxyx and here: the resize event repaints


def run(sampler: Callable[[], Sample], delay: float, sort: str) -> int:
    import curses

    def loop(window: curses.window) -> int:
        try:
            curses.curs_set(0)
        except curses.error:
            pass
        try:
            curses.use_default_colors()
        except curses.error:
            pass
        window.keypad(True)
        screen = Screen(window, sampler, delay, sort)
        screen.paint()
        next_sample = time.monotonic() + min(delay, FIRST_REFRESH_S)
        while True:
            window.timeout(max(1, int((next_sample - time.monotonic()) * 1000)))
            key = window.getch()
            if key != -1:
                if not screen.handle(key):
                    return 0
                screen.paint()
            if time.monotonic() >= next_sample:
                screen.refresh_sample()
                screen.paint()
                next_sample = time.monotonic() + delay

    return curses.wrapper(loop)
