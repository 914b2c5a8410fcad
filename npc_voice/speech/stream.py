"""An NPC line as a stream of 200 ms chunks, with the subtitle and lip-sync timing of each chunk.

The first sentence is usually synthesised ahead, while the player was still finishing their turn (a
``Future``, so the floor decision never waits for the voice); otherwise it is synthesised when the line
starts. Later sentences are synthesised ahead on a worker thread while the earlier ones play.

A line may carry marks (``speech/marks.py``): each is reported once, in the chunk where its word starts to play,
at that word's offset, and never if the line is stopped before it (its actions wait on them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE
from npc_voice.speech.marks import Mark, spoken_word
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
    marks: list[tuple[float, Any]] = field(default_factory=list)  # (offset s, payload) of marks reached here


class LineStream:
    """Plays one line chunk by chunk; sentences after the first are synthesised ahead."""

    def __init__(self, line_id: str, text: str, synth: SynthFn, executor: Executor,
                 first: Synthesized | Future[Synthesized] | None = None, lead_in: float = 0.0,
                 marks: Sequence[Mark] = ()) -> None:
        """``first``: the first sentence synthesised ahead, or being synthesised (an answer prepared ahead).
        ``lead_in``: seconds of silence before it, so an answer decided early starts a human gap after the
        player's voice, inside a chunk rather than at its start. ``marks``: reported as their words play."""
        self.line_id, self.text = line_id, text
        self._marks = list(marks)
        self._mark_at: dict[int, float] = {}  # mark index -> where its word starts in _audio (s)
        self._fired: set[int] = set()
        self._cancelled = False
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
        for i, mark in enumerate(self._marks):  # a mark waits for the first sentence that says its word
            if i in self._mark_at:
                continue
            if mark.word is None:
                self._mark_at[i] = base + (words[0][0] if words else 0.0)
                continue
            t = next((t for t, w in words if spoken_word(w) == mark.word), None)
            if t is not None:
                self._mark_at[i] = base + t

    def waiting(self) -> Future | None:
        """The sentence this line needs to fill its next 200 ms, still being synthesised (None: it has the audio,
        is held, or has nothing more to say). A simulated clock waits for it, as real time would have passed."""
        self._append_ready()
        if self._held or len(self._audio) - self._pos >= CHUNK_SAMPLES or not self._pending:
            return None
        return self._pending[0]

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
        if self._cancelled:  # what was cut off was never said
            return out
        due = sorted((t, i) for i, t in self._mark_at.items() if i not in self._fired and t < t1)
        if out.finished:  # a word the synthesiser wrote otherwise was still said: report it at the line's end
            lost = [i for i in range(len(self._marks)) if i not in self._fired and i not in self._mark_at]
            if lost:
                log.warning("line %s: no word %s in %r; its marks are reported at the end", self.line_id,
                            [self._marks[i].word for i in lost], self.text)
            due += [(t1, i) for i in lost]
        for t, i in due:
            self._fired.add(i)
            out.marks.append((round(min(max(0.0, t - t0), t1 - t0), 3), self._marks[i].payload))
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
        # a mark not yet reached comes with its word, taken up again after the aside (a reached one stays done)
        self._mark_at = {i: t + shift_s if t >= resume / SAMPLE_RATE else t for i, t in self._mark_at.items()}
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

    def unsaid_marks(self) -> list[Mark]:
        """The marks not reached yet (a line cut off and taken up again keeps them)."""
        return [m for i, m in enumerate(self._marks) if i not in self._fired]

    def _current_sentence(self) -> int:
        """Index of the sentence being played (``len(_starts)`` between sentences: the next one to come)."""
        if self._pos >= len(self._audio):
            return len(self._starts)
        return max(0, sum(1 for s in self._starts if s <= self._pos) - 1)

    def cancel(self) -> None:
        """Stop: drop pending synthesis; marks not reached are never reported."""
        self._cancelled = True
        for fut in self._pending:
            fut.cancel()
        self._pending.clear()
        self._pos = len(self._audio)
