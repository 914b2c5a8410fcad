"""Speech out: the NPC's lines as streams of 200 ms chunks, in the persona's voice as the NPC feels now."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor, Future

import numpy as np

from npc_voice import events as ev
from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE, silence
from npc_voice.engine.clock import Clock
from npc_voice.engine.state import CutLine, PersonaRef, SpeakingState, StretchState
from npc_voice.model.emotion import NpcFeelings
from npc_voice.persona.loader import LineAction
from npc_voice.speech.marks import Mark
from npc_voice.speech.stream import LineStream, Synthesized
from npc_voice.speech.tts import Synthesizer, VoiceSettings


class Speaker:
    """Starts, stops and plays the NPC's lines (``SpeakingState``); synthesises in its current voice. A line's
    actions go out as ``action`` events as their words play: each once, none of a part that was cut off."""

    def __init__(self, npc_id: str, tts: Synthesizer, voices: Executor, persona: PersonaRef, feelings: NpcFeelings,
                 speaking: SpeakingState, stretch: StretchState, clock: Clock) -> None:
        self.npc_id, self.tts, self.voices, self.clock = npc_id, tts, voices, clock
        self.persona, self.feelings, self.speaking, self.stretch = persona, feelings, speaking, stretch

    def voice(self) -> VoiceSettings:
        """The persona's voice, shifted by what the NPC feels now (scaled by its ``emotion_shift``)."""
        return self.persona.loaded.persona.voice.settings(self.feelings.voice_shift())

    def synth(self, text: str) -> Synthesized:
        utt = self.tts.synthesize(text, self.voice())
        return utt.audio, utt.words, utt.visemes

    def new_line_id(self) -> str:
        return f"{self.npc_id}-{next(self.speaking.line_ids)}"

    def start_line(self, line_id: str, text: str, first: Synthesized | Future[Synthesized] | None,
                   events: list[ev.Event], step: int, lead_in: float = 0.0,
                   actions: Sequence[LineAction] = ()) -> None:
        """The line takes the floor (in step ``step``), after ``lead_in`` s of silence in this reply. The rest of a
        line that was cut off, taken up again, keeps the actions it had not reached."""
        marks = [Mark(a.at, (i, a)) for i, a in enumerate(actions)]
        cut, self.speaking.cut = self.speaking.cut, None
        if not marks and cut is not None and cut.unsaid == text:
            marks = list(cut.marks)
        self.speaking.line = LineStream(line_id, text, self.synth, self.voices, first=first, lead_in=lead_in,
                                        marks=marks)
        self.speaking.line_step = step
        self.speaking.aside = None
        self.stretch.player_p = 0.0  # the player's voice before the line does not speak for what comes over it
        events.append(ev.SpeechStart(offset=round(lead_in, 3), line_id=line_id, text=text))

    def aside(self, line_id: str, text: str, first: Synthesized) -> None:
        """A short aside over the player's turn (its own "mm-hm"): no speech_start, the floor stays theirs."""
        self.speaking.aside = LineStream(line_id, text, self.synth, self.voices, first=first)

    def stop_line(self, events: list[ev.Event], heard: str) -> LineStream:
        """Stop the line at once (the client flushes what it queued of it); returns it."""
        line, self.speaking.line = self.speaking.line, None
        assert line is not None
        self.speaking.cut = CutLine(line.unsaid(), tuple(line.unsaid_marks()))
        line.cancel()
        events.append(ev.Interrupted(offset=0.0, line_id=line.line_id, heard=heard))
        events.append(ev.SpeechEnd(offset=0.0, line_id=line.line_id, completed=False))
        return line

    def next_chunk(self, events: list[ev.Event]) -> np.ndarray:
        """The next 200 ms of the line (or the aside), with its subtitle and lip-sync timing; silence if none."""
        stream = self.speaking.line or self.speaking.aside
        if stream is None:
            return silence()
        # Real time plays silence while a sentence is still being synthesised (a live Piper sentence takes ~0.1 s);
        # a simulated clock waits for it and charges the wait to the step, as real time would have passed.
        self.clock.settle(stream.waiting())
        chunk = stream.next_chunk()
        if chunk.words:
            events.append(ev.Words(offset=0.0, words=chunk.words))
        if chunk.visemes:
            events.append(ev.Visemes(offset=0.0, visemes=chunk.visemes))
        for offset, (index, action) in chunk.marks:
            events.append(ev.GameAction(offset=offset, line_id=stream.line_id, index=index, word=action.at,
                                        **action.fields()))
        if chunk.finished and stream is self.speaking.aside:
            self.speaking.aside = None  # an aside has no speech_start/speech_end: the floor stayed with the player
        elif chunk.finished:
            end = float(np.flatnonzero(chunk.pcm).max() + 1) / SAMPLE_RATE if chunk.pcm.any() else 0.0
            events.append(ev.SpeechEnd(offset=round(end, 3), line_id=stream.line_id, completed=True))
            self.speaking.line = None
        assert len(chunk.pcm) == CHUNK_SAMPLES
        return chunk.pcm

    def close(self) -> None:
        if self.speaking.line is not None:
            self.speaking.line.cancel()
