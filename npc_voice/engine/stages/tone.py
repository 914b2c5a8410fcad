from __future__ import annotations

from typing import Any

from npc_voice.audio.format import CHUNK_SECONDS
from npc_voice.config import ToneConfig
from npc_voice.engine.frame import StepFrame
from npc_voice.engine.state import HearingState
from npc_voice.engine.turn_reader import HeardVoice, TurnReader
from npc_voice.model.emotion import NpcFeelings, PlayerTone, ToneEstimate


class Tone:
    """The player's tone from this chunk; the NPC's feelings follow it (events when they change).

    A stretch's final verdict is held until the turn read has the voice's encoder states (``Read.voice``), or
    for ``voice_wait_s`` at most: mixed with those states, the verdict reads actors it never heard far better
    than prosody alone (``models/emotion/report.md``), and it is the verdict that moves the NPC.
    """

    def __init__(self, config: ToneConfig, tone: PlayerTone, feelings: NpcFeelings, hearing: HearingState,
                 reader: TurnReader, game_state: dict[str, Any]) -> None:
        self.config, self.tone, self.feelings, self.hearing = config, tone, feelings, hearing
        self.reader, self.game_state = reader, game_state
        self.held: ToneEstimate | None = None  # a final verdict waiting for the turn read's voice
        self.waited_s = 0.0
        self.used: HeardVoice | None = None

    def run(self, frame: StepFrame) -> None:
        assert frame.clean is not None
        estimate: ToneEstimate | None = self.tone.step(frame.clean, self.hearing.in_speech)
        if frame.was_speaking and not self.hearing.in_speech:
            final = self.tone.end_of_speech()
            if final is not None and self.tone.hears_voices:
                self.held, self.waited_s = final, 0.0
            else:
                estimate = final or estimate
        if self.held is not None:
            estimate = self.release() or estimate
        player_event = self.tone.event_for(estimate)
        if player_event is not None:
            frame.events.append(player_event)
        self.feelings.update(CHUNK_SECONDS, player_tone=estimate, game_state=self.game_state)
        npc_event = self.feelings.event()
        if npc_event is not None:
            frame.events.append(npc_event)

    def release(self) -> ToneEstimate | None:
        """The held verdict with the voice, once the turn read has it; alone once the wait is over or the
        player speaks again; None while it still waits."""
        heard = self.reader.voice_of_turn()
        held = self.held
        if heard is not None and heard is not self.used:
            self.used, self.held = heard, None
            return self.tone.with_voice(heard.voice, heard.recogniser) or held
        self.waited_s += CHUNK_SECONDS
        if self.waited_s > self.config.voice_wait_s or self.hearing.in_speech:
            self.held = None
            return held
        return None
