from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import SpeakingConfig
from npc_voice.features.words import words_of
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class AwaitingRead:
    """Long speech over the NPC that no read has named yet (or one word of a hum misread): a moment more
    (``read_grace_s``), and while a newer read is coming (under load reads run late) up to the longest
    backchannel."""

    name: ClassVar[str] = "speaking.awaiting_read"
    config: SpeakingConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        c = self.config
        read = obs.stretch_words
        said_little = read is None or len(words_of(read)) < 2
        if said_little and (obs.speech_s <= c.backchannel_max_s + c.read_grace_s or (
                obs.stretch_read_pending and obs.speech_s <= c.backchannel_hold_max_s)):
            return FloorDecision(Action.CONTINUE, self.name, f"{obs.speech_s:.2f} s, read so far {read!r}")
        return None
