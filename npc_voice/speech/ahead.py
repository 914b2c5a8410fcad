"""Lines rendered ahead: every sentence a persona can say, in every voice level its feelings can take.

A persona's lines are known before anyone talks: each line and variant with its ``{knowledge}`` filled
in (and, for a ``{state}`` placeholder whose key is a list of values, each value), cut into the
sentences the engine speaks one by one (``split_sentences``), plus the whole text of reactions the
engine speaks in one piece ("Let me finish."). Each is rendered in each emotion voice level
(``npc_voice.model.emotion.VOICE_LEVELS``; the resting level first, as the likeliest) into the on-disk
cache, so an answer's first audio is a file read. A line whose words depend on free game state
(``{reputation}``) cannot be known: the engine synthesises it when it is said.

Rendering runs on one background thread at the lowest CPU priority (Linux: the idle scheduling class
for that thread alone), so the voices the engine needs now always go first. A persona edit re-renders only
what changed: unchanged sentences have the same key and are already on disk; the old version's files
that no persona uses any more are deleted.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from npc_voice.model.emotion import VOICE_LEVELS
from npc_voice.persona.loader import Persona
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
    complete: bool  # False if a newer version of the persona replaced this pass before it finished


def _lower_priority() -> None:
    """Render only on CPU time nothing else wants: on Linux the render thread alone is put in the idle
    scheduling class (``SCHED_IDLE``, below even ``nice`` 19), so it never slows the engine, whatever the
    priority of the process around it; elsewhere it is niced as far as it goes."""
    tid = threading.get_native_id()
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        return
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed: normal priority
        os.setpriority(os.PRIO_PROCESS, tid, 19)


_EXECUTOR: ThreadPoolExecutor | None = None
_EXECUTOR_LOCK = threading.Lock()


def _render_thread() -> ThreadPoolExecutor:
    """The process's one render thread: two renderers (two engines in one process) queue behind each other,
    so the second finds the lines the first rendered instead of rendering them again beside it."""
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="npc-voice-render",
                                           initializer=_lower_priority)
        return _EXECUTOR


class RenderAhead:
    """Renders personas' lines into the voice cache on one low-priority background thread."""

    def __init__(self, voices: Voices) -> None:
        self.voices = voices
        self._executor = _render_thread()
        self._lock = threading.Lock()
        self._generation: dict[str, int] = {}
        self._keys: dict[str, set[str]] = {}  # persona id -> cache keys of its version rendered last

    def submit(self, persona: Persona) -> Future[RenderReport]:
        """Render ``persona`` in the background; a later submit of the same persona supersedes this one."""
        with self._lock:
            generation = self._generation.get(persona.id, 0) + 1
            self._generation[persona.id] = generation
        return self._executor.submit(self.render, persona, generation)

    def render(self, persona: Persona, generation: int | None = None, levels: int | None = None) -> RenderReport:
        """Render every missing line of ``persona`` now (on the calling thread); ``levels``: only the first
        so many voice levels (the resting one first)."""
        start = time.perf_counter()
        texts = spoken_texts(persona)
        chosen = voice_levels(persona)[:levels]
        keys: set[str] = set()
        rendered = present = 0
        if generation is not None and self._generation.get(persona.id) != generation:
            return RenderReport(persona=persona.id, texts=len(texts), levels=len(chosen), rendered=0, present=0,
                                dropped=0, seconds=0.0, complete=False)  # superseded (or closed) while queued
        self.voices.warm(chosen[0][1])  # load the voice model here, not on the voice thread at the first live line
        complete = True
        for _, settings in chosen:
            for text in texts:
                if generation is not None and self._generation.get(persona.id) != generation:
                    complete = False
                    break
                key = self.voices.key(text, settings)
                keys.add(key)
                if self.voices.cache.has(key):
                    present += 1
                    continue
                try:
                    utterance = self.voices.render(text, settings)
                except Exception:  # one bad line must not stop the rest
                    log.exception("persona %s: could not render %r ahead", persona.id, text)
                    continue
                try:
                    self.voices.cache.put(key, utterance)
                except OSError as exc:  # a full disk or a read-only folder: say so once, then stop trying
                    log.warning("voice cache %s cannot be written (%s): persona %s's lines are synthesised when "
                                "said", self.voices.cache.folder, exc, persona.id)
                    complete = False
                    break
                rendered += 1
            if not complete:
                break
        dropped = self._forget_old(persona.id, keys) if complete and levels is None else 0
        report = RenderReport(persona=persona.id, texts=len(texts), levels=len(chosen), rendered=rendered,
                              present=present, dropped=dropped, seconds=time.perf_counter() - start,
                              complete=complete)
        if complete:
            log.info("persona %s: %d lines x %d voice levels ready ahead (%d rendered in %.1f s, %d were "
                     "there, %d old dropped)", persona.id, report.texts, report.levels, rendered, report.seconds,
                     present, dropped)
        return report

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
        with self._lock:
            for persona_id in self._generation:
                self._generation[persona_id] += 1  # a pass under way stops at its next line
