from __future__ import annotations

from npc_voice import events as ev
from npc_voice.config import ReadingConfig
from npc_voice.engine.frame import StepFrame
from npc_voice.engine.state import HearingState, SpeakingState, TurnState
from npc_voice.engine.stretch_reader import StretchReader
from npc_voice.engine.turn_reader import TurnReader
from npc_voice.features.asr import StreamingRecognizer


class Recognition:
    """Stream the chunk into the recogniser (partials, for cue words and the duplex model); keep the accurate
    reads of the player's speech going: of the turn while the NPC is silent, of the stretch over it while
    it speaks."""

    def __init__(self, config: ReadingConfig, recognizer: StreamingRecognizer, hearing: HearingState, turn: TurnState,
                 speaking: SpeakingState, reader: TurnReader, stretch_reader: StretchReader) -> None:
        self.config, self.recognizer, self.hearing, self.turn = config, recognizer, hearing, turn
        self.speaking, self.reader, self.stretch_reader = speaking, reader, stretch_reader

    def run(self, frame: StepFrame) -> None:
        asr = self.recognizer
        if frame.started and not asr.in_utterance:
            asr.start(preroll=self.hearing.prev_chunk)
        if not asr.in_utterance:
            return
        assert frame.clean is not None
        partial = asr.feed(frame.clean)
        if partial and partial != self.turn.partial:
            self.turn.partial = partial
            frame.events.append(ev.Transcript(text=partial, final=False))
        h = self.hearing
        if self.speaking.line is not None and h.in_speech and h.speech_s >= self.config.stretch_read_after_s:
            self.stretch_reader.start_read()
        if self.speaking.line is None:
            self.reader.read_ahead(frame.end_s, predictive=frame.load.predictive)
