from __future__ import annotations

from typing import Protocol

import numpy as np

from npc_voice.audio.echo import EchoCanceller
from npc_voice.config import HearingConfig
from npc_voice.engine.frame import StepFrame
from npc_voice.engine.state import HearingState


class VoiceActivityModel(Protocol):
    """Per-frame P(speech) of a stream of 16 kHz int16 audio (``features/vad.py``; a fake in tests)."""

    def process(self, chunk: np.ndarray) -> np.ndarray: ...


class EchoGate:
    """Cancel the NPC's own voice from the microphone and hear voice activity on what is left. Residual echo of
    the NPC's voice can look like speech to the VAD; the player talking over it leaves far more than the
    canceller expects, so only that counts as speech. When the canceller removed little (a headset: no echo
    at all), what the mic hears is the player."""

    def __init__(self, config: HearingConfig, hearing: HearingState, vad: VoiceActivityModel,
                 canceller: EchoCanceller) -> None:
        self.config, self.hearing, self.vad, self.canceller = config, hearing, vad, canceller

    def run(self, frame: StepFrame) -> None:
        c = self.config
        frame.clean = self.canceller.process(frame.mic, frame.played)
        frame.probs = frame.raw_probs = self.vad.process(frame.clean)
        echo = frame.echo = self.canceller.stats
        needed = c.echo_excess_hold_db if self.hearing.in_speech else c.echo_excess_start_db
        mostly_echo = echo.mic_db - echo.out_db > c.echo_removed_db  # the canceller took most of the mic away
        if echo.ref_active and mostly_echo and echo.residual_excess_db < needed:
            frame.probs = np.minimum(frame.probs, c.speech_off * 0.5)
