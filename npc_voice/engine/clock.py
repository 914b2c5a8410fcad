"""The step's clock: real time (a game) or simulated (a bench that sends chunks faster than real time).

In real time a step never blocks on look-ahead work (reads, voices) except for a short, bounded wait for
a read that is due (``ReadingConfig.read_wait_s``); that wait is idle time, not compute. On the simulated
clock the step waits for whatever look-ahead work it needs, and that wait is charged to the step's
compute time, which the bench turns into simulated time: the same result as if the work had run in the
background while real time passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from typing import Any, Protocol


class Clock(Protocol):
    def begin_step(self) -> None:
        """A step starts now."""

    def now(self) -> float:
        """Seconds on the monotonic performance counter (what reads are timed with)."""

    def settle(self, future: Future[Any] | None) -> None:
        """Simulated: wait for ``future`` (charged to the step). Real time: nothing."""

    def settle_now(self, start: Callable[[], Future[Any] | None]) -> None:
        """Simulated: do now the look-ahead work ``start`` begins, and wait for it. Real time: nothing."""

    def due_by_deadline(self, due_at: float) -> bool:
        """Real time: work due at ``due_at`` (``now()`` time) is due within the step's wait. Simulated: never."""

    def by_deadline(self, future: Future[Any] | None) -> bool:
        """Real time: wait for ``future`` until the step's wait is over; True if it is done (or None).
        Simulated: True without waiting (the step settles what it uses)."""

    def lead_in(self, lead: float, first: Future[Any] | None) -> tuple[float, float] | None:
        """A projected answer's silence before its first sound in the reply and when that sound plays after the
        chunk's end, given the floor's ``lead``; None if its first voice (``first``) is not ready to go out."""

    def compute_ms(self) -> float:
        """The step's own work so far: time since ``begin_step`` less idle waits."""


class RealTimeClock:
    """A game's clock: replies go out as soon as they are ready; only a due read is waited for, briefly."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s  # ReadingConfig.read_wait_s
        self.started = time.perf_counter()
        self.waited_s = 0.0

    def begin_step(self) -> None:
        self.started, self.waited_s = time.perf_counter(), 0.0

    def now(self) -> float:
        return time.perf_counter()

    def settle(self, future: Future[Any] | None) -> None:
        return None

    def settle_now(self, start: Callable[[], Future[Any] | None]) -> None:
        return None

    def due_by_deadline(self, due_at: float) -> bool:
        return due_at <= self.started + self.wait_s

    def by_deadline(self, future: Future[Any] | None) -> bool:
        if future is None or future.done():
            return True
        t0 = time.perf_counter()
        wait([future], timeout=max(0.0, self.started + self.wait_s - t0))
        self.waited_s += time.perf_counter() - t0
        return future.done()

    def lead_in(self, lead: float, first: Future[Any] | None) -> tuple[float, float] | None:
        if first is not None and not first.done():
            # Not waited for: the next chunk decides again, with 200 ms more of the player heard (a voice gap
            # inside a sentence, "Can I get a new sword | from you?", has ended by then), in a reply that can
            # carry the answer's first sound.
            return None
        # The reply leaves this long after the chunk's end, and its audio plays from then on.
        late = time.perf_counter() - self.started
        return max(0.0, lead - late), max(lead, late)

    def compute_ms(self) -> float:
        return (time.perf_counter() - self.started - self.waited_s) * 1000


class SimulatedClock(RealTimeClock):
    """A bench's clock: what a step needs is waited for, and the wait counts as the step's compute."""

    def __init__(self) -> None:
        super().__init__(wait_s=0.0)

    def settle(self, future: Future[Any] | None) -> None:
        if future is not None:
            wait([future])

    def settle_now(self, start: Callable[[], Future[Any] | None]) -> None:
        self.settle(start())

    def due_by_deadline(self, due_at: float) -> bool:
        return False

    def by_deadline(self, future: Future[Any] | None) -> bool:
        return True

    def lead_in(self, lead: float, first: Future[Any] | None) -> tuple[float, float] | None:
        return lead, lead
