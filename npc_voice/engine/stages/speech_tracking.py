from __future__ import annotations

import numpy as np

from npc_voice.audio.format import SAMPLE_RATE
from npc_voice.config import HearingConfig, OnsetConfig
from npc_voice.engine.frame import StepFrame
from npc_voice.engine.state import HearingState, SpeakingState, StretchState, TurnState
from npc_voice.engine.stretch_reader import StretchReader
from npc_voice.features.vad import FRAME_SECONDS


def block_db(pcm: np.ndarray, block: int) -> np.ndarray:
    """Level (dBFS) of each ``block`` samples of int16 ``pcm``."""
    blocks = pcm.astype(np.float32).reshape(-1, block) / 32768.0
    return 10.0 * np.log10(np.mean(blocks * blocks, axis=1) + 1e-10)


class SpeechTracking:
    """Stretches of the player's speech from the gated voice activity (speech and silence lengths, at frame
    resolution), and where the voice was last loud: silero hears a voice stop 30-130 ms late, loudness does
    not. A stretch that starts over the NPC opens a new stretch to judge."""

    def __init__(self, config: HearingConfig, onset: OnsetConfig, hearing: HearingState, turn: TurnState,
                 stretch: StretchState, speaking: SpeakingState, stretch_reader: StretchReader) -> None:
        self.config, self.onset, self.hearing, self.turn = config, onset, hearing, turn
        self.stretch, self.speaking, self.stretch_reader = stretch, speaking, stretch_reader

    def run(self, frame: StepFrame) -> None:
        h = self.hearing
        frame.was_speaking = h.in_speech
        frame.quiet_before = 0.0 if h.in_speech else h.silence_s
        assert frame.probs is not None and frame.clean is not None
        frame.started = self._track(frame.probs)
        self._track_loudness(frame)

    def _track(self, probs: np.ndarray) -> bool:
        """True if a stretch began in this chunk."""
        h, c = self.hearing, self.config
        started = False
        for p in probs:
            h.heard_s += FRAME_SECONDS
            if h.in_speech:
                if p < c.speech_off:
                    h.below += 1
                    if h.below >= c.hangover_frames:
                        h.in_speech, h.silence_s, h.below = False, h.below * FRAME_SECONDS, 0
                        continue
                else:
                    h.below = 0
                    h.voiced_end_s = h.heard_s
                h.speech_s += FRAME_SECONDS
                self.turn.speech_s += FRAME_SECONDS
            elif p >= c.speech_on:
                h.in_speech = started = True
                h.voiced_end_s = h.heard_s
                h.speech_s = FRAME_SECONDS
                self.turn.speech_s += FRAME_SECONDS
                h.silence_s = 0.0
                self._new_stretch()
            else:
                h.silence_s += FRAME_SECONDS
        return started

    def _new_stretch(self) -> None:
        line, onset = self.speaking.line, self.speaking.onset
        self.stretch.judged = line is None  # only speech over the NPC is a backchannel
        self.stretch.held = False
        self.stretch_reader.new_stretch()
        self.stretch.at_onset = (onset is not None and line is not None and line.line_id == onset.line_id
                                 and self.hearing.heard_s - onset.sound_s <= self.onset.overlap_s)

    def _track_loudness(self, frame: StepFrame) -> None:
        """Where in this chunk the player's voice was last loud, while a stretch of speech runs or ends."""
        h, c = self.hearing, self.config
        if frame.started:  # until a block of the new stretch is loud, the voice-activity end stands
            h.peak_db, h.loud_end_s = c.silence_db, float("inf")
        if not (frame.was_speaking or h.in_speech):
            return
        assert frame.clean is not None
        db = block_db(frame.clean, c.loud_block)
        h.peak_db = max(h.peak_db, float(db.max()))
        loud = np.flatnonzero(db >= max(h.peak_db - c.loud_range_db, c.silence_db))
        if loud.size:
            h.loud_end_s = frame.start_s + (loud[-1] + 1) * c.loud_block / SAMPLE_RATE
