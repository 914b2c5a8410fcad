from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import ListeningConfig
from npc_voice.features.words import speaks_to_listener
from npc_voice.floor.decision import FloorDecision
from npc_voice.floor.evidence import silence_decision, whole_sentence
from npc_voice.floor.observation import FloorObservation, Understood


@dataclass(frozen=True)
class OffTopicStatement:
    """A statement heard clearly that fits nothing the persona knows ("My feet are killing me after that walk.",
    "I'm looking for information about Cambridge."), said in one breath with a final fall: the player is done and
    waits for an answer, so its ``unknown`` line comes after the middling gap, not the 1.2 s wait. Someone reading
    or telling a story says such sentences too and goes on after them; two signs tell them apart:

    - the prosody model hears the turn complete (``complete_p``, projection's), not the level tune of a clause;
    - the turn is one stretch of speech: at most ``statement_earlier_speech_s`` of voice before its last stretch.
      A reader's sentence comes after others in the same turn, with pauses between ("There's iron they say, in
      all our blood, | and a grain or two perhaps is good.").

    Tried after ``listening.off_topic`` (which takes questions and words to the NPC); what it leaves, a statement
    with a level tune or after earlier stretches, waits the long silence as before."""

    name: ClassVar[str] = "listening.off_topic_statement"
    config: ListeningConfig
    complete_p: float  # the prosody model's P(the turn is complete) from which the turn is over (projection's)

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        c = self.config
        if (obs.understood is not Understood.UNKNOWN or not whole_sentence(obs.words)
                or speaks_to_listener(obs.words)):
            return None
        earlier = obs.turn_speech_s - obs.speech_s
        if obs.p_end is None or obs.p_end < self.complete_p or earlier > c.statement_earlier_speech_s:
            return None
        return silence_decision(self.name, obs, c.end_silence_s,
                                f"a statement heard clearly (P {obs.clarity:.2f}), fit {obs.fit:.2f}, P(end) "
                                f"{obs.p_end:.2f}, {earlier:.2f} s of voice before its last stretch: nothing it knows")
