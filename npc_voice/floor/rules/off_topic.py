from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import ListeningConfig
from npc_voice.floor.decision import FloorDecision
from npc_voice.floor.evidence import asks_off_topic, silence_decision
from npc_voice.floor.observation import FloorObservation, Understood


@dataclass(frozen=True)
class OffTopic:
    """Words heard clearly that fit nothing the persona knows ("I'm looking for information about Cambridge."):
    a question it has no answer for, not a mishearing. Its ``unknown`` line answers after a human gap, as a person
    says "never heard of it" without first waiting to be sure they heard: the clear request's when the prosody
    model hears the turn complete (``complete_p``), else the middling gap (0.35 s of silero silence, about 0.45 s
    after the voice), because a first sentence that fits nothing often has a second that does ("Excuse me, I'm in
    a hurry. | Just sell me a sword."). Only words that ask something or speak to the NPC ("Do you sell candles?",
    "Who painted the Mona Lisa?"): a statement ("He makes me harshly feel.") is as often a sentence of someone
    reading or telling a story who goes on after the pause (``python -m npc_voice.bench.real_pauses``: taken for a
    question at the gap, real readers' pauses were cut into 5 times in 16, against once), and a short fragment
    ("That's not.") or a backchannel ("Sure.") is none: they wait as before."""

    name: ClassVar[str] = "listening.off_topic"
    config: ListeningConfig
    complete_p: float  # the prosody model's P(the turn is complete) from which the turn is over (projection's)

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        if obs.understood is not Understood.UNKNOWN or not asks_off_topic(obs.words):
            return None
        done = obs.p_end is not None and obs.p_end >= self.complete_p
        gap = self.config.sure_silence_s if done else self.config.end_silence_s
        return silence_decision(self.name, obs, gap,
                                f"heard clearly (P {obs.clarity:.2f}), fit {obs.fit:.2f}: nothing it knows")
