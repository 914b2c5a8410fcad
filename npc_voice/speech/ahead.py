"""Lines rendered ahead: every sentence a persona can say, in every voice level its feelings can take.

A persona's lines are known before anyone talks: each line and variant with its ``{knowledge}`` filled
in (and, for a ``{state}`` placeholder whose key is a list of values, each value), cut into the
sentences the engine speaks one by one (``split_sentences``), plus the whole text of reactions the
engine speaks in one piece ("Let me finish."). Each is rendered in each emotion voice level
(``npc_voice.model.emotion.VOICE_LEVELS``; the resting level first, as the likeliest) into the on-disk
cache, so an answer's first audio is a file read. A line whose words depend on free game state
(``{reputation}``) cannot be known: the engine synthesises it when it is said.

In the sidecar, rendering runs in a process of its own at the lowest CPU priority (Linux: the idle
scheduling class), so the voices the engine needs now always go first and its work never holds the
engine's interpreter lock. A persona edit re-renders only
what changed: unchanged sentences have the same key and are already on disk; the old version's files
that no persona uses any more are deleted.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from npc_voice.model.emotion import VOICE_LEVELS
from npc_voice.persona.loader import Persona
from npc_voice.speech import render_worker
from npc_voice.speech.tts import VoiceSettings, split_sentences
from npc_voice.speech.voices import Voices

log = logging.getLogger(__name__)
MAX_FILLINGS = 16  # a line with list-valued {state} placeholders is rendered for at most this many value sets
WHOLE_TEXT_REACTIONS = ("holds_floor",)  # said in one piece over the player, not sentence by sentence


def _fillings(persona: Persona, text: str) -> list[str]:
    """``text`` with knowledge filled in, once per combination of list-valued state it names; [] if it
    names free state (a number, a flag or text the game sends: known only when said)."""
    names = [n for n in dict.fromkeys(_placeholders(text)) if n not in persona.knowledge]
    choices = []
    for name in names:
        key = persona.state.get(name)
        if key is None or key.kind != "choice":
            return []
        choices.append(key.choices)
    combos = list(itertools.islice(itertools.product(*choices), MAX_FILLINGS))
    return [persona.fill(text, dict(zip(names, combo, strict=True))) for combo in combos]


def _placeholders(text: str) -> list[str]:
    return re.findall(r"\{([^{}]*)\}", text)


def spoken_texts(persona: Persona) -> list[str]:
    """Every text the engine may synthesise for this persona that can be known ahead, each once, in order."""
    out: dict[str, None] = {}
    groups: list[tuple[str, Iterable]] = [("topic", t.lines) for t in persona.topics.values()]
    groups += [("bark", options) for options in persona.barks.values()]
    groups += [(f"reaction:{kind}", options) for kind, options in persona.reactions.items()]
    for kind, options in groups:
        for option in options:
            for variant in option.variants:
                for text in _fillings(persona, variant):
                    for sentence in split_sentences(text) or [text]:
                        out.setdefault(sentence)
                    if kind.removeprefix("reaction:") in WHOLE_TEXT_REACTIONS:
                        out.setdefault(text)
    return list(out)


def resting_level(persona: Persona) -> str:
    """The voice level the persona's feelings rest in (its baseline mood's category)."""
    from npc_voice.model.emotion import NpcFeelings

    return NpcFeelings(persona.temperament).current()[0]


def voice_levels(persona: Persona) -> list[tuple[str, VoiceSettings]]:
    """The persona's voice in each emotion level, the resting one first."""
    rest = resting_level(persona)
    order = [rest] + [level for level in VOICE_LEVELS if level != rest]
    return [(level, persona.voice.settings(VOICE_LEVELS[level])) for level in order]


@dataclass(frozen=True)
class RenderReport:
    """What one render-ahead pass of a persona did."""

    persona: str
    texts: int  # distinct texts known ahead
    levels: int
    rendered: int  # files rendered now
    present: int  # files that were already in the cache
    dropped: int  # files of the previous version no persona says any more
    seconds: float
    complete: bool  # False if it was stopped before the end
    keys: frozenset[str] = field(default=frozenset(), repr=False, compare=False)  # this version's cache keys


def render_lines(voices: Voices, persona: Persona, levels: int | None = None,
                 stop: Callable[[], bool] = lambda: False) -> RenderReport:
    """Render every missing sentence of ``persona`` into ``voices.cache`` on the calling thread; ``levels``:
    only the first so many voice levels (the resting one first); ``stop`` is asked between sentences."""
    start = time.perf_counter()
    texts = spoken_texts(persona)
    chosen = voice_levels(persona)[:levels]
    keys: set[str] = set()
    rendered = present = 0
    complete = not stop()
    if complete:
        voices.warm(chosen[0][1])
    for _, settings in chosen if complete else ():
        for text in texts:
            if stop():
                complete = False
                break
            key = voices.key(text, settings)
            keys.add(key)
            if voices.cache.has(key):
                present += 1
                continue
            try:
                utterance = voices.render(text, settings)
            except Exception:  # one bad line must not stop the rest
                log.exception("persona %s: could not render %r ahead", persona.id, text)
                continue
            try:
                voices.cache.put(key, utterance)
            except OSError as exc:  # a full disk or a read-only folder: say so once, then stop trying
                log.warning("voice cache %s cannot be written (%s): persona %s's lines are synthesised when "
                            "said", voices.cache.folder, exc, persona.id)
                complete = False
                break
            rendered += 1
        if not complete:
            break
    return RenderReport(persona=persona.id, texts=len(texts), levels=len(chosen), rendered=rendered, present=present,
                        dropped=0, seconds=time.perf_counter() - start, complete=complete, keys=frozenset(keys))


class RenderAhead:
    """Renders personas' lines into the voice cache: ``submit`` in a low-priority render process of its own,
    ``render`` on the calling thread (the ``persona render`` command, tests)."""

    def __init__(self, voices: Voices) -> None:
        self.voices = voices
        self._lock = threading.Lock()
        self._generation: dict[str, int] = {}
        self._pending: dict[str, Future[RenderReport]] = {}
        self._keys: dict[str, set[str]] = {}  # persona id -> cache keys of its version rendered last
        self._pool: ProcessPoolExecutor | None = None
        self._stop: Any = None

    def _process(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")  # no copy of the engine's threads and locks
            self._stop = context.Event()
            # A process of its own, not a thread: Praat and the phonemiser hold Python's GIL while they work,
            # and a starved low-priority thread holding it would stall the engine's threads with it.
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=render_worker.init,
                                             initargs=(self._stop,))
        return self._pool

    def submit(self, persona: Persona) -> Future[RenderReport]:
        """Render ``persona`` in the render process; a newer version submitted before it started replaces it."""
        with self._lock:
            generation = self._generation.get(persona.id, 0) + 1
            self._generation[persona.id] = generation
            old = self._pending.get(persona.id)
            if old is not None:
                old.cancel()  # only if it has not started; a running pass finishes (it only adds files)
            future = self._process().submit(render_worker.render, persona, str(self.voices.cache.folder))
            self._pending[persona.id] = future
        future.add_done_callback(lambda done: self._finished(persona.id, generation, done))
        return future

    def _finished(self, persona_id: str, generation: int, done: Future[RenderReport]) -> None:
        if done.cancelled():
            return
        if done.exception() is not None:
            log.error("persona %s: rendering ahead failed: %r", persona_id, done.exception())
            return
        report = done.result()
        with self._lock:
            current = self._generation.get(persona_id) == generation
        if report.complete and current:
            dropped = self._forget_old(persona_id, set(report.keys))
            log.info("persona %s: %d lines x %d voice levels ready ahead (%d rendered in %.1f s, %d were "
                     "there, %d old dropped)", persona_id, report.texts, report.levels, report.rendered,
                     report.seconds, report.present, dropped)

    def render(self, persona: Persona, levels: int | None = None) -> RenderReport:
        """Render every missing line of ``persona`` now, on the calling thread; ``levels``: only the first so
        many voice levels. A full pass also deletes the previous version's files no persona says any more."""
        report = render_lines(self.voices, persona, levels)
        dropped = self._forget_old(persona.id, set(report.keys)) if report.complete and levels is None else 0
        if report.complete:
            log.info("persona %s: %d lines x %d voice levels ready ahead (%d rendered in %.1f s)", persona.id,
                     report.texts, report.levels, report.rendered, report.seconds)
        return replace(report, dropped=dropped)

    def _forget_old(self, persona_id: str, keys: set[str]) -> int:
        """Delete the previous version's files that no persona's current version says."""
        with self._lock:
            old = self._keys.get(persona_id, set())
            self._keys[persona_id] = keys
            used = set().union(*self._keys.values())
        dropped = 0
        for key in old - used:
            if self.voices.cache.remove(key):
                dropped += 1
        return dropped

    def close(self) -> None:
        """Stop the render process (a pass under way stops at its next sentence)."""
        with self._lock:
            pool, self._pool = self._pool, None
            for future in self._pending.values():
                future.cancel()
        if pool is not None:
            self._stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
