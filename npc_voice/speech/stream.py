"""An NPC line as a stream of 200 ms chunks, with the subtitle and lip-sync timing of each chunk.

The first sentence is usually synthesised ahead, while the player was still finishing their turn (a
``Future``, so the floor decision never waits for the voice); otherwise it is synthesised when the line
starts. Later sentences are synthesised ahead on a worker thread while the earlier ones play.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

import numpy as np

from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE
from npc_voice.speech.tts import split_sentences

log = logging.getLogger(__name__)
BREATH = int(0.12 * SAMPLE_RATE)  # silence between two sentences of a line

Synthesized = tuple[np.ndarray, list[tuple[float, str]], list[tuple[float, str]]]  # audio, words, visemes
SynthFn = Callable[[str], Synthesized]


@dataclass
class SpokenChunk:
    """200 ms of a line: audio plus the words and visemes that start inside it (offsets in s)."""

    pcm: np.ndarray
    words: list[tuple[float, str]] = field(default_factory=list)
    visemes: list[tuple[float, str]] = field(default_factory=list)
    finished: bool = False


class LineStream:
    """Plays one line chunk by chunk; sentences after the first are synthesised ahead."""

    def __init__(self, line_id: str, text: str, synth: SynthFn, executor: Executor,
                 first: Synthesized | Future[Synthesized] | None = None, lead_in: float = 0.0) -> None:
        """``first``: the first sentence synthesised ahead, or being synthesised (an answer prepared ahead).
        ``lead_in``: seconds of silence before it, so an answer decided early starts a human gap after the
        player's voice, inside a chunk rather than at its start."""
        self.line_id, self.text = line_id, text
        sentences = split_sentences(text) or [text]
        if first is None:
            first = synth(sentences[0])
        self._pending: list[Future] = [executor.submit(synth, s) for s in sentences[1:]]
        self._audio = np.zeros(round(lead_in * SAMPLE_RATE), np.int16)
        self._words: list[tuple[float, str]] = []
        self._visemes: list[tuple[float, str]] = []
        self._starts: list[int] = []  # where each sentence begins in _audio (a line resumes from one)
        if isinstance(first, Future):
            self._pending.insert(0, first)
        else:
            self._append(first)
        self._pos = 0  # samples of _audio already played
        self._held = False  # paused while the player talks over it (``hold``)

    def _append_ready(self) -> None:
        """Append synthesised sentences that are ready, in order."""
        while self._pending and self._pending[0].done():
            done = self._pending.pop(0)
            if done.cancelled() or done.exception() is not None:  # a failed sentence is skipped, not fatal
                log.error("line %s: a sentence could not be synthesised: %r", self.line_id,
                          None if done.cancelled() else done.exception())
                continue
            self._append(done.result())

    def _append(self, sentence: Synthesized) -> None:
        audio, words, visemes = sentence
        gap = np.zeros(BREATH if self._starts else 0, np.int16)
        base = (len(self._audio) + len(gap)) / SAMPLE_RATE
        self._starts.append(len(self._audio) + len(gap))
        self._audio = np.concatenate([self._audio, gap, audio])
        self._words += [(t + base, w) for t, w in words]
        self._visemes += [(t + base, v) for t, v in visemes]

    @property
    def finished(self) -> bool:
        return not self._pending and self._pos >= len(self._audio)

    def next_chunk(self) -> SpokenChunk:
        """The next 200 ms of this line (padded with silence at the end, while synthesis lags or while held)."""
        self._append_ready()
        if self._held:
            return SpokenChunk(pcm=np.zeros(CHUNK_SAMPLES, np.int16), words=[], visemes=[], finished=False)
        start = self._pos
        end = min(start + CHUNK_SAMPLES, len(self._audio))
        pcm = np.zeros(CHUNK_SAMPLES, np.int16)
        pcm[: end - start] = self._audio[start:end]
        self._pos = end
        t0, t1 = start / SAMPLE_RATE, end / SAMPLE_RATE
        out = SpokenChunk(
            pcm=pcm,
            words=[(round(t - t0, 3), w) for t, w in self._words if t0 <= t < t1],
            visemes=[(round(t - t0, 3), v) for t, v in self._visemes if t0 <= t < t1],
            finished=False,
        )
        self._append_ready()
        out.finished = self.finished
        return out

    @property
    def held(self) -> bool:
        return self._held

    def hold(self, back_s: float) -> None:
        """Pause: no more audio until ``release``, which takes the line up again from the start of the word that
        was playing ``back_s`` ago (what the player heard last: the client dropped what it had queued)."""
        if self._held:
            return
        self._held = True
        at = max(0.0, self._pos / SAMPLE_RATE - back_s)
        starts = [t for t, _ in self._words if t <= at]
        self._pos = round(max(starts) * SAMPLE_RATE) if starts else min(self._pos, round(at * SAMPLE_RATE))

    def release(self) -> None:
        self._held = False

    def interject(self, aside: Synthesized) -> None:
        """Say ``aside`` now ("Let me finish."), then take the line up again from the start of the
        sentence it broke into, as a speaker who holds the floor does. Sentences still being
        synthesised follow as before."""
        self._append_ready()
        current = self._current_sentence()
        resume = self._starts[current] if current < len(self._starts) else self._pos
        gap = np.zeros(BREATH, np.int16)
        shift = len(aside[0]) + len(gap) + self._pos - resume  # where old sample ``resume`` moves to, minus it
        at, shift_s = self._pos / SAMPLE_RATE, shift / SAMPLE_RATE
        tail = self._audio[resume:]
        self._audio = np.concatenate([self._audio[: self._pos], aside[0], gap, tail])

        def moved(marks: list[tuple[float, str]], new: list[tuple[float, str]]) -> list[tuple[float, str]]:
            kept = [(t, m) for t, m in marks if t < at]
            again = [(t + shift_s, m) for t, m in marks if t >= resume / SAMPLE_RATE]
            return kept + [(t + at, m) for t, m in new] + again

        self._words = moved(self._words, aside[1])
        self._visemes = moved(self._visemes, aside[2])
        self._starts = [s for s in self._starts if s < resume] + [s + shift for s in self._starts if s >= resume]

    def recent_words(self, seconds: float) -> list[str]:
        """The words played in the last ``seconds``: what the player's microphone may be hearing back."""
        now = self._pos / SAMPLE_RATE
        return [w for t, w in self._words if now - seconds <= t <= now]

    def unsaid(self) -> str:
        """The rest of the line from the start of the sentence it is in (to take it up again after a cut-in
        that turned out to be only "mm-hm"); '' when it is all said."""
        sentences = split_sentences(self.text) or [self.text]
        return " ".join(sentences[self._current_sentence():])

    def _current_sentence(self) -> int:
        """Index of the sentence being played (``len(_starts)`` between sentences: the next one to come)."""
        if self._pos >= len(self._audio):
            return len(self._starts)
        return max(0, sum(1 for s in self._starts if s <= self._pos) - 1)

    def cancel(self) -> None:
        """Stop: drop pending synthesis."""
        for fut in self._pending:
            fut.cancel()
        self._pending.clear()
        self._pos = len(self._audio)
