from __future__ import annotations

from collections.abc import Callable

from npc_voice.audio.format import SAMPLE_RATE
from npc_voice.config import HearingConfig, OnsetConfig
from npc_voice.engine.frame import StepFrame
from npc_voice.engine.speaker import Speaker
from npc_voice.engine.stages.speech_tracking import block_db
from npc_voice.engine.state import HearingState, SpeakingState, StretchState, TurnState
from npc_voice.floor.decision import Action, FloorDecision


def restore_turn(speaking: SpeakingState, turn: TurnState) -> str:
    """Yielding at an answer's onset: the conversation goes back to before the answer; returns the words the
    answer was to, which the rest of the turn goes on."""
    onset, speaking.onset = speaking.onset, None
    if onset is None:
        return ""
    turn.restore(onset.before)
    return onset.heard


class SettleProjection:
    """The step after an answer was started early (projected): if the player's voice came back before its first
    sound could reach them ("My sword is broken, | can you fix it?") and went on (``yield_voice_s``), yield: stop
    at once, the turn is still theirs. Otherwise the answer stands and the turn is over; silero's late frames of
    it are not a new stretch of speech over the NPC."""

    name = "gate.projection_yield"

    def __init__(self, hearing_config: HearingConfig, config: OnsetConfig, hearing: HearingState, turn: TurnState,
                 stretch: StretchState, speaking: SpeakingState, speaker: Speaker,
                 reset_turn: Callable[[], None]) -> None:
        self.hearing_config, self.config, self.hearing, self.turn = hearing_config, config, hearing, turn
        self.stretch, self.speaking, self.speaker, self.reset_turn = stretch, speaking, speaker, reset_turn

    def run(self, frame: StepFrame) -> None:
        projected, self.speaking.projected = self.speaking.projected, None
        if projected is None:
            return
        assert frame.clean is not None
        block = self.hearing_config.loud_block
        heard = frame.clean[: int((projected.starts_in + self.config.yield_slack_s) * SAMPLE_RATE) // block * block]
        loud = block_db(heard, block) >= projected.loud_db  # at least yield_slack_s of blocks
        voiced = int(loud.sum()) * block  # samples of loud blocks
        if self.speaking.line is not None and (loud[-1] or voiced >= self.config.yield_voice_s * SAMPLE_RATE):
            self.speaker.stop_line(frame.events, self.turn.partial)
            restore_turn(self.speaking, self.turn)
            self.stretch.judged = True
            how = "still loud there" if loud[-1] else f"{voiced / SAMPLE_RATE:.2f} s of it"
            why = f"the player's voice came back before the answer could reach them ({how})"
            frame.yielded = FloorDecision(Action.INTERRUPTED, self.name, why)
            return
        self.reset_turn()
        h = self.hearing
        if h.in_speech and not frame.started:
            h.in_speech, h.below = False, 0
            h.silence_s = max(0.0, h.quiet_for(frame.end_s))
