"""The strategy sets: which rules decide the floor in each phase, in which order.

- ``rules`` (the default): silence tiers by how sure the NPC is that it heard a whole request, projection in
  the chunk the voice ends, and speech over the NPC judged by length, cue words, its accurate read and the
  duplex model's player head.
- ``duplex``: the learned duplex model's heads, with the words as a veto (``docs/duplex.md``).
- ``cascade``: what pipecat and LiveKit users build today: silero VAD, the smart-turn v3 end-of-turn model,
  LiveKit's barge-in and false-interruption resume. The baseline a user would pick instead of ours.

A session picks one by name (``open``'s ``policy``, ``npc-voice bench duplex --policy``).
"""

from __future__ import annotations

from dataclasses import dataclass

from npc_voice.config import AddresseeConfig, CascadeConfig, DuplexConfig, FloorConfig, UnderstandingConfig
from npc_voice.floor.arbiter import Arbiter
from npc_voice.floor.decision import FloorDecision
from npc_voice.floor.evidence import hears_player
from npc_voice.floor.observation import FloorObservation, Phase
from npc_voice.floor.rules.awaiting_read import AwaitingRead
from npc_voice.floor.rules.blurred_and_unclear import BlurredAndUnclear
from npc_voice.floor.rules.cascade_barge_in import CascadeBargeIn
from npc_voice.floor.rules.cascade_false_interruption import CascadeFalseInterruption
from npc_voice.floor.rules.cascade_smart_turn import CascadeSmartTurn
from npc_voice.floor.rules.cascade_stop_secs import CascadeStopSecs
from npc_voice.floor.rules.clear_request import ClearRequest
from npc_voice.floor.rules.cue_word import CueWord
from npc_voice.floor.rules.duplex_cue_word import DuplexCueWord
from npc_voice.floor.rules.duplex_finished_words import DuplexFinishedWords
from npc_voice.floor.rules.duplex_holds_unfinished import DuplexHoldsUnfinished
from npc_voice.floor.rules.duplex_interrupt_head import DuplexInterruptHead
from npc_voice.floor.rules.duplex_long_stretch import DuplexLongStretch
from npc_voice.floor.rules.duplex_no_model import DuplexNoModel
from npc_voice.floor.rules.duplex_shift_head import DuplexShiftHead
from npc_voice.floor.rules.ended_awaiting_read import EndedAwaitingRead
from npc_voice.floor.rules.ended_backchannel import EndedBackchannel
from npc_voice.floor.rules.goes_on import GoesOn
from npc_voice.floor.rules.long_speech import LongSpeech
from npc_voice.floor.rules.middling_fit import MiddlingFit
from npc_voice.floor.rules.not_addressed import NotAddressed
from npc_voice.floor.rules.not_addressed_over_npc import NotAddressedOverNpc
from npc_voice.floor.rules.not_heard_clearly import NotHeardClearly
from npc_voice.floor.rules.off_topic import OffTopic
from npc_voice.floor.rules.off_topic_statement import OffTopicStatement
from npc_voice.floor.rules.own_echo import OwnEcho
from npc_voice.floor.rules.projection import Projection
from npc_voice.floor.rules.short_stretch import ShortStretch
from npc_voice.floor.rules.slow_backchannel import SlowBackchannel
from npc_voice.floor.rules.still_talking import StillTalking
from npc_voice.floor.rules.streaming_words import StreamingWords
from npc_voice.floor.rules.strong_fit_unfinished import StrongFitUnfinished
from npc_voice.floor.rules.torn_words import TornWords
from npc_voice.floor.rules.unfinished_or_unknown import UnfinishedOrUnknown
from npc_voice.floor.rules.unknown_voice import UnknownVoice
from npc_voice.floor.rules.which_topic import WhichTopic

STRATEGIES = ("rules", "duplex", "cascade")


@dataclass(frozen=True)
class StrategySet:
    """One way of deciding the floor, and what it needs the engine to compute for it."""

    name: str
    arbiter: Arbiter
    projection: Projection | None = None  # answering in the chunk the voice ends (``rules`` only)
    # Speech over the NPC is the player only if the duplex model's P(player) reaches this over the stretch;
    # None: every stretch the VAD hears over the NPC is the player's.
    player_p: float | None = None
    needs_heads: bool = False  # the duplex model's heads decide: it runs in every step, even under overload
    needs_turn_model: bool = False  # the smart-turn model reads the turn at each pause
    # The NPC pauses its line once the player's voice has gone on this long over it, undecided (``gate.hold_line``,
    # ``engine/stages/hold.py``); None: it talks on until a rule decides.
    hold_after_s: float | None = None
    hold_player_p: float = 0.9  # ... when the duplex model's P(player) over the stretch reaches this

    def decide(self, obs: FloorObservation) -> FloorDecision:
        return self.arbiter.decide(obs)

    def hears_player(self, player_p: float | None) -> bool:
        """The stretch over the NPC whose highest P(player) is ``player_p`` is the player's voice."""
        return self.player_p is None or hears_player(player_p, self.player_p)


def rules_strategy(config: FloorConfig, addressee: AddresseeConfig | None = None,
                   understanding: UnderstandingConfig | None = None) -> StrategySet:
    listening, speaking = config.listening, config.speaking
    who = addressee or AddresseeConfig()
    understanding = understanding or UnderstandingConfig()
    return StrategySet(
        name="rules",
        arbiter=Arbiter({
            Phase.LISTENING: (StillTalking(listening.min_turn_speech_s),
                              NotAddressed(who, listening.sure_silence_s),
                              BlurredAndUnclear(who, understanding.clear_p, listening.sure_silence_s),
                              StreamingWords(listening),
                              OffTopic(listening, config.projection.p_end),
                              OffTopicStatement(listening, config.projection.p_end), NotHeardClearly(listening),
                              StrongFitUnfinished(listening), UnfinishedOrUnknown(listening), ClearRequest(listening),
                              TornWords(listening), WhichTopic(listening), MiddlingFit(listening)),
            Phase.OVER_NPC: (NotAddressedOverNpc(who), UnknownVoice(speaking), CueWord(speaking), GoesOn(speaking),
                             ShortStretch(speaking), OwnEcho(), SlowBackchannel(speaking), AwaitingRead(speaking),
                             LongSpeech()),
            Phase.STRETCH_ENDED: (NotAddressedOverNpc(who), CueWord(speaking), GoesOn(speaking),
                                  EndedAwaitingRead(speaking), EndedBackchannel()),
        }),
        projection=Projection(listening, config.projection, who),
        player_p=speaking.player_p,
        hold_after_s=speaking.hold_after_s,
        hold_player_p=speaking.hold_player_p,
    )


def duplex_strategy(config: DuplexConfig | None = None) -> StrategySet:
    c = config or DuplexConfig()
    heads = (DuplexNoModel(), DuplexInterruptHead(c), DuplexCueWord(c))
    return StrategySet(
        name="duplex",
        arbiter=Arbiter({
            Phase.LISTENING: (DuplexNoModel(), StillTalking(c.min_turn_speech_s), DuplexHoldsUnfinished(c),
                              DuplexShiftHead(c), DuplexFinishedWords(c)),
            Phase.OVER_NPC: (*heads, DuplexLongStretch(c)),
            Phase.STRETCH_ENDED: (*heads, EndedBackchannel()),
            Phase.NPC_ALONE: heads,
        }),
        needs_heads=True,
    )


def cascade_strategy(config: CascadeConfig | None = None) -> StrategySet:
    c = config or CascadeConfig()
    return StrategySet(
        name="cascade",
        arbiter=Arbiter({
            Phase.LISTENING: (CascadeFalseInterruption(c), StillTalking(c.min_turn_speech_s), CascadeSmartTurn(c),
                              CascadeStopSecs(c)),
            Phase.OVER_NPC: (CascadeBargeIn(c),),
            Phase.STRETCH_ENDED: (CascadeBargeIn(c), EndedBackchannel()),
        }),
        needs_turn_model=True,
    )


def strategy_for(name: str, patience: float, prosody: tuple[float, float] | None = None,
                 addressee: AddresseeConfig | None = None,
                 understanding: UnderstandingConfig | None = None) -> StrategySet:
    """The strategy set ``name`` for a persona of ``patience``; ``prosody``: the endpoint model's (P(end),
    hold) thresholds when it is loaded, for projection; ``addressee``: when speech is not the player's to answer;
    ``understanding``: when words count as heard clearly."""
    if name == "rules":
        config = FloorConfig.for_patience(patience)
        return rules_strategy(config if prosody is None else config.with_prosody(*prosody), addressee, understanding)
    if name == "duplex":
        return duplex_strategy()
    if name == "cascade":
        return cascade_strategy()
    raise ValueError(f"unknown floor policy {name!r}; known: {', '.join(STRATEGIES)}")
