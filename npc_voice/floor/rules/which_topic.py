from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import ListeningConfig
from npc_voice.floor.decision import FloorDecision
from npc_voice.floor.evidence import silence_decision
from npc_voice.floor.observation import FloorObservation, Understood


@dataclass(frozen=True)
class WhichTopic:
    """Words heard clearly that fit two topics equally weakly ("Can you make me something for the road?"): the NPC
    asks which one ("A sword or a shield, friend?") rather than answer the wrong one, after the middling gap. Tried
    after ``listening.torn_words``: "I would like to buy." (sword 0.59, shield 0.59) is often Whisper finishing
    a fragment the player goes on from ("... | a sword, please"), which the streaming words hear unfinished."""

    name: ClassVar[str] = "listening.which_topic"
    config: ListeningConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        if obs.understood is not Understood.WHICH:
            return None
        return silence_decision(self.name, obs, self.config.end_silence_s,
                                f"two topics fit {obs.fit:.2f}, {obs.margin:.2f} apart: it asks which")
