"""A session's parts: its state objects and the helpers that read and answer for it, wired once.

The stages (``engine/stages/``) each get the parts they need from here; ``Session`` only runs them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from npc_voice.config import EngineConfig
from npc_voice.engine.answers import AnswerBuilder
from npc_voice.engine.barks import BarkScheduler
from npc_voice.engine.clock import Clock, RealTimeClock, SimulatedClock
from npc_voice.engine.memory import ConversationMemory
from npc_voice.engine.resources import EngineResources
from npc_voice.engine.speaker import Speaker
from npc_voice.engine.state import (
    AddresseeState,
    HearingState,
    PersonaRef,
    SpeakingState,
    StretchState,
    TurnState,
)
from npc_voice.engine.stretch_reader import StretchReader
from npc_voice.engine.turn_reader import TurnReader
from npc_voice.features.asr import StreamingRecognizer
from npc_voice.floor.strategies import StrategySet, strategy_for
from npc_voice.model.emotion import NpcFeelings, PlayerTone
from npc_voice.model.endpoint import EndOfTurn
from npc_voice.model.sentiment import analyse


@dataclass(frozen=True)
class EngineParts:
    """What a session is built from besides the shared resources. None: the real part (silero VAD, the MDF echo
    canceller, pocketsphinx, the duplex model and the prosody model when their weights are here); tests give
    fakes."""

    vad: Callable[[], Any] | None = None  # -> VoiceActivityModel
    canceller: Callable[[], Any] | None = None  # -> EchoCanceller
    recognizer: Callable[[Any, Any], Any] | None = None  # (AsrModels, PersonaLM) -> StreamingRecognizer
    heads: Callable[[], Any] | None = None  # -> HeadsState
    endpoint: Any | None = None  # EndpointProsody
    turn_model: Any | None = None  # pipecat's smart-turn analyzer (cascade)
    sentiment: Callable[[str], Any] | None = None  # text -> TextSentiment (the MiniLM sentiment model)
    use_heads: bool = True  # False: no duplex model even if its weights are here
    use_endpoint: bool = True
    speaker: Callable[[Any], Any] | None = None  # audio -> speaker embedding (default: the resources' encoder)


@dataclass
class SessionContext:
    """Everything one conversation keeps between steps."""

    config: EngineConfig
    resources: EngineResources
    npc_id: str
    persona: PersonaRef
    game_state: dict[str, Any]
    rng: random.Random
    clock: Clock
    strategy: StrategySet
    hearing: HearingState
    turn: TurnState
    stretch: StretchState
    speaking: SpeakingState
    recognizer: StreamingRecognizer
    tone: PlayerTone
    feelings: NpcFeelings
    answers: AnswerBuilder
    speaker: Speaker
    reader: TurnReader
    stretch_reader: StretchReader
    barks: BarkScheduler
    parts: EngineParts
    addressee: AddresseeState
    memory: ConversationMemory
    hold_events: bool = False  # the client asked for ``held`` events (it drops queued audio on them)

    def reset_turn(self) -> None:
        """The player's turn is over (answered, or only a backchannel): a new one starts from nothing."""
        self.turn.reset(seed=self.rng.random())
        self.addressee.reset()
        self.reader.reset()
        self.answers.forget_voice()
        self.reader.drop_prepared()
        if self.recognizer.in_utterance:
            self.recognizer.finish(accurate=False)

    def close(self) -> None:
        self.memory.close(npc_speaking=self.speaking.line is not None)
        self.speaker.close()
        self.barks.close()
        self.reset_turn()


def new_context(resources: EngineResources, persona_id: str, npc_id: str, state: dict[str, Any] | None,
                seed: int | None, simulated_clock: bool, policy: str, config: EngineConfig | None = None,
                parts: EngineParts | None = None, push_to_talk: bool = False,
                hold_events: bool = False, player: str | None = None) -> SessionContext:
    """Wire a session's parts for ``persona_id`` (raises ``KeyError``/``PersonaError`` as the resources do).
    ``push_to_talk``: only speech while the game says the key is held is the player's. ``player``: the game's id
    of the player, whose memory is read now and written as the conversation goes."""
    config, parts = config or EngineConfig(), parts or EngineParts()
    loaded = resources.persona(persona_id)
    persona = PersonaRef(persona_id, loaded)
    prosody = None
    if parts.use_endpoint and parts.endpoint is None and EndOfTurn.available():
        prosody = (EndOfTurn.shared().threshold, EndOfTurn.shared().hold_threshold)
    strategy = strategy_for(policy, loaded.persona.temperament.patience, prosody, config.addressee,
                            config.understanding)
    clock: Clock = SimulatedClock() if simulated_clock else RealTimeClock(config.reading.read_wait_s)
    rng = random.Random(seed)
    game_state: dict[str, Any] = dict(state or {})
    hearing = HearingState(silence_db=config.hearing.silence_db)
    turn = TurnState(seed=rng.random())
    stretch, speaking = StretchState(), SpeakingState()
    recognizer = (parts.recognizer or StreamingRecognizer)(resources.asr, loaded.lm)
    feelings = NpcFeelings(loaded.persona.temperament)
    speaker = Speaker(npc_id, resources.tts, resources.voices, persona, feelings, speaking, stretch, clock)
    memory = ConversationMemory(config.memory, resources.memory, player, npc_id)
    answers = AnswerBuilder(resources, speaker.synth, parts.sentiment or analyse, config.understanding, memory)
    reader = TurnReader(config.reading, resources, recognizer, answers, persona, game_state, turn, hearing, clock)
    stretch_reader = StretchReader(config.reading, resources, recognizer, hearing, turn, stretch, speaking, strategy,
                                   clock)
    barks = BarkScheduler(config.temperament, persona, game_state, rng, resources.voices, speaker, hearing, turn,
                          speaking, reader, clock, memory)
    return SessionContext(config, resources, npc_id, persona, game_state, rng, clock, strategy, hearing, turn,
                          stretch, speaking, recognizer, PlayerTone(), feelings, answers, speaker, reader,
                          stretch_reader, barks, parts, AddresseeState(push_to_talk=push_to_talk), memory,
                          hold_events)
