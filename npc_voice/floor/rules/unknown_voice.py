from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import SpeakingConfig
from npc_voice.features.words import words_of
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.evidence import hears_player
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class UnknownVoice:
    """Speech over the NPC that the duplex model does not hear as the player is the NPC's own voice leaking
    past the canceller, or noise: talk on. Past ``unheard_max_s`` of it whose read says three words or more
    that are not the NPC's own, it is the player after all (a voice unlike any the model learned)."""

    name: ClassVar[str] = "speaking.unknown_voice"
    config: SpeakingConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        if hears_player(obs.stretch_player_p, self.config.player_p):
            return None
        read = obs.stretch_words
        said = read is not None and not obs.stretch_is_echo and len(words_of(read)) >= 3
        if said and obs.speech_s >= self.config.unheard_max_s:
            return FloorDecision(Action.INTERRUPTED, self.name, f"{obs.speech_s:.1f} s of words: {read!r}")
        return FloorDecision(Action.CONTINUE, self.name, f"P(player) {obs.stretch_player_p:.2f}: not the player")
