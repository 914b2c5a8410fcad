from __future__ import annotations

from npc_voice import events as ev
from npc_voice.engine.frame import StepFrame
from npc_voice.engine.state import HearingState, TurnState


class FloorReport:
    """The ``floor`` event for sessions that asked: the duplex model's heads for this chunk, the prosody's verdict
    on the turn's last voice end (while the player is quiet after it), the action and the rule that decided it.
    Only in steps the duplex model ran in (under overload it may not while the NPC listens)."""

    def __init__(self, hearing: HearingState, turn: TurnState, explain: bool = True) -> None:
        self.hearing, self.turn, self.explain = hearing, turn, explain

    def run(self, frame: StepFrame) -> None:
        out = frame.heads
        if out is None:
            return
        decision = frame.outcome
        h, t = self.hearing, self.turn
        end = t.voice_end
        quiet_after = end is not None and end.at_s == h.loud_end_s and not h.in_speech and t.speech_s > 0
        p_end = end.p_end if quiet_after and end is not None else None
        speaking = frame.npc_was_speaking
        frame.events.append(ev.Floor(
            action=decision.action.value, rule=decision.rule if self.explain else None,
            why=(decision.why or None) if self.explain else None,
            p_yield=round(out.shift, 3), p_yield_soon=round(out.soon, 3), p_player=round(out.player, 3),
            p_backchannel=round(out.backchannel, 3) if speaking else None,
            p_interrupt=round(out.interrupt, 3) if speaking else None,
            p_end=None if p_end is None else round(p_end, 3),
        ))
