from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import SpeakingConfig
from npc_voice.features.words import is_backchannel, words_of
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class SlowBackchannel:
    """A long "mmm-hmmm": the stretch's accurate read says it is a backchannel, or, when that read says little
    (a hum is often misread as one odd word), the streaming words do ("m m h m"). Talk on, up to
    ``backchannel_hold_max_s``."""

    name: ClassVar[str] = "speaking.slow_backchannel"
    config: SpeakingConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        read = obs.stretch_words
        said_little = read is None or len(words_of(read)) < 2
        hum = (read is not None and is_backchannel(read)) or (said_little and is_backchannel(obs.words))
        if hum and obs.speech_s <= self.config.backchannel_hold_max_s:
            return FloorDecision(Action.CONTINUE, self.name, f"a backchannel said slowly: {read or obs.words!r}")
        return None
