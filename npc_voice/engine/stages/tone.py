from __future__ import annotations

from typing import Any

from npc_voice.audio.format import CHUNK_SECONDS
from npc_voice.engine.frame import StepFrame
from npc_voice.engine.state import HearingState
from npc_voice.model.emotion import NpcFeelings, PlayerTone, ToneEstimate


class Tone:
    """The player's tone from this chunk; the NPC's feelings follow it (events when they change)."""

    def __init__(self, tone: PlayerTone, feelings: NpcFeelings, hearing: HearingState,
                 game_state: dict[str, Any]) -> None:
        self.tone, self.feelings, self.hearing, self.game_state = tone, feelings, hearing, game_state

    def run(self, frame: StepFrame) -> None:
        assert frame.clean is not None
        estimate: ToneEstimate | None = self.tone.step(frame.clean, self.hearing.in_speech)
        if frame.was_speaking and not self.hearing.in_speech:
            estimate = self.tone.end_of_speech() or estimate
        player_event = self.tone.event_for(estimate)
        if player_event is not None:
            frame.events.append(player_event)
        self.feelings.update(CHUNK_SECONDS, player_tone=estimate, game_state=self.game_state)
        npc_event = self.feelings.event()
        if npc_event is not None:
            frame.events.append(npc_event)
