from __future__ import annotations

from npc_voice import events as ev
from npc_voice.config import AddresseeConfig
from npc_voice.engine.frame import StepFrame
from npc_voice.engine.state import HearingState, SpeakingState
from npc_voice.floor.decision import Action
from npc_voice.floor.evidence import not_addressed
from npc_voice.floor.rules.awaiting_read import AwaitingRead
from npc_voice.floor.rules.ended_awaiting_read import EndedAwaitingRead
from npc_voice.floor.rules.short_stretch import ShortStretch
from npc_voice.floor.strategies import StrategySet

# Rules that only wait to learn more about speech over the NPC: while one decides, a held line stays held.
UNDECIDED = (ShortStretch.name, AwaitingRead.name, EndedAwaitingRead.name, "speaking.talks_on", "ended.talks_on")
REWIND_S = 0.3  # a held line takes up again from the word that was playing this long before it paused
# The voice quiet this long by its loudness has ended ("Okay." is over): the line goes on without waiting the
# 0.1 s voice-activity hangover and the 30-130 ms silero hears an end late.
QUIET_S = 0.2


class HoldLine:
    """Two gates on the floor's decision while the NPC speaks, before it is carried out:

    - ``gate.hold_line``: the player's voice (the duplex model hears them, and it is addressed to the NPC) has
      gone on the strategy's ``hold_after_s`` over the NPC and no rule has decided yet: the NPC pauses its line at
      once, as a person falls silent when talked over (a ``held`` event tells the client to drop what it queued);
      not over the answer's first moments, where its own echo is most often taken for the player and
      ``speaking.goes_on`` yields to a player who goes on. An interruption then stops it for good without the
      0.5-0.7 s it takes to hear "wait!";
    - the release: once the speech ends without a rule stopping the NPC (a stretch that long is no interruption by
      itself: the rules stop for longer speech while it lasts), or a rule judges it only "mm-hm" (or not the
      player's), the line goes on from the word it paused in (a ``held`` event with ``held`` false; the decision
      record keeps the rule that judged it). A cue word read only once the stretch is whole ("Sorry, stop.")
      still interrupts the line a moment later.

    The hold is only a pause of the audio: the floor's decision (talk on) and every rule after it are unchanged,
    and the scorer's backchannel test (the NPC speaks on after the "uh-huh") still holds for a short pause."""

    def __init__(self, addressee: AddresseeConfig, strategy: StrategySet, hearing: HearingState,
                 speaking: SpeakingState, events: bool) -> None:
        self.addressee, self.strategy = addressee, strategy
        self.hearing, self.speaking, self.events = hearing, speaking, events

    def run(self, frame: StepFrame) -> None:
        line, decision, obs = self.speaking.line, frame.decision, frame.observation
        after = self.strategy.hold_after_s
        if line is None or obs is None or after is None or decision.action is Action.INTERRUPTED:
            return  # an interruption stops the line anyway
        undecided = decision.action is Action.CONTINUE and decision.rule in UNDECIDED
        h = self.hearing
        if line.held:
            if undecided and h.in_speech and h.quiet_for(frame.end_s) < QUIET_S:
                return  # still talking over it: held until a rule decides, or the voice falls quiet
            line.release()  # the decision stands as the rule that judged the speech made it
            if self.events:
                frame.events.append(ev.Held(line_id=line.line_id, held=False))
            return
        if not (undecided and h.in_speech and h.speech_s >= after and h.quiet_for(frame.end_s) < QUIET_S
                and not obs.stretch_is_echo and not obs.stretch_at_onset
                and (obs.stretch_player_p or 0.0) >= self.strategy.hold_player_p
                and not_addressed(obs.addressee, self.addressee) is None):
            return
        line.hold(REWIND_S)
        frame.decision = decision.overruled(Action.CONTINUE, "gate.hold_line",
                                            f"the player's voice {h.speech_s:.2f} s over the line")
        if self.events:
            frame.events.append(ev.Held(offset=0.0, line_id=line.line_id, held=True))
