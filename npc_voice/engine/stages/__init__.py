"""The stages of one step, in the order they run (``pipeline``): each a small class with one job over the step's
frame (``engine/frame.py``) and the session's state objects (``engine/state.py``).

    persona refresh -> recall -> game cue -> echo gate -> speech tracking -> addressee evidence -> projection settle
    -> recognition -> tone -> duplex heads -> [smart turn] -> floor -> temperament -> hold line -> player profile
    -> act -> speak -> remember -> [floor report]
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from npc_voice.audio.echo import EchoCanceller
from npc_voice.config import CascadeConfig
from npc_voice.engine.context import SessionContext
from npc_voice.engine.stages.act import Act
from npc_voice.engine.stages.addressee import AddresseeEvidence, PlayerProfile
from npc_voice.engine.stages.base import Stage
from npc_voice.engine.stages.cue import GameCue
from npc_voice.engine.stages.duplex_heads import DuplexHeads
from npc_voice.engine.stages.echo_gate import EchoGate
from npc_voice.engine.stages.floor import Floor
from npc_voice.engine.stages.hold import HoldLine
from npc_voice.engine.stages.onset import SettleProjection
from npc_voice.engine.stages.persona import PersonaRefresh
from npc_voice.engine.stages.recall import Recall
from npc_voice.engine.stages.recognition import Recognition
from npc_voice.engine.stages.remember import Remember
from npc_voice.engine.stages.report import FloorReport
from npc_voice.engine.stages.smart_turn import SmartTurn, smart_turn_analyzer
from npc_voice.engine.stages.speak import Speak
from npc_voice.engine.stages.speech_tracking import SpeechTracking
from npc_voice.engine.stages.temperament import Temperament
from npc_voice.engine.stages.tone import Tone
from npc_voice.features.vad import VoiceActivity
from npc_voice.model.duplex import DuplexModel, DuplexState
from npc_voice.model.endpoint import EndOfTurn

log = logging.getLogger(__name__)


def _duplex_session() -> DuplexState:
    return DuplexModel.shared().session()


def _addressee(ctx: SessionContext) -> AddresseeEvidence:
    """Who the speech is for: its evidence, with the speaker encoder the session was given or the shared one."""
    encoder, sp = ctx.resources.speaker, ctx.speaking
    embed = ctx.parts.speaker or (encoder.embed if encoder is not None else None)
    return AddresseeEvidence(ctx.config.addressee, ctx.addressee, ctx.hearing, ctx.turn, ctx.recognizer,
                             lambda: sp.line is not None, embed, ctx.resources.listeners)


def _heads(ctx: SessionContext) -> Callable[[], Any] | None:
    """The duplex model's per-session state maker: the session's fake, the trained model, or none (warned)."""
    parts = ctx.parts
    if parts.heads is not None:
        return parts.heads
    if parts.use_heads and DuplexModel.available():
        return _duplex_session
    if parts.use_heads:
        log.warning("no duplex weights in models/duplex (python -m npc_voice.train.duplex): no echo check by the "
                    "model, no floor events")
    return None


def _endpoint(ctx: SessionContext) -> Any | None:
    parts = ctx.parts
    if parts.endpoint is None and parts.use_endpoint and EndOfTurn.available():
        return EndOfTurn.shared()
    return parts.endpoint


def pipeline(ctx: SessionContext, floor_events: bool, explain: bool = True) -> list[Stage]:
    """The stages of ``ctx``'s step. The duplex model runs in every session when its weights are here: its
    player head tells the player's voice over the NPC from the NPC's own echo for the rules, and its heads go
    out in ``floor`` events when asked (``floor_events``; ``explain``: with the rule that decided)."""
    c, parts = ctx.config, ctx.parts
    h, t, s, sp = ctx.hearing, ctx.turn, ctx.stretch, ctx.speaking
    addressee = _addressee(ctx)
    stages: list[Stage] = [
        PersonaRefresh(ctx.resources, ctx.persona, ctx.recognizer, sp, t),
        Recall(ctx.memory, sp),
        GameCue(ctx.barks),
        EchoGate(c.hearing, h, (parts.vad or VoiceActivity)(), (parts.canceller or EchoCanceller)()),
        SpeechTracking(c.hearing, c.onset, h, t, s, sp, ctx.stretch_reader),
        addressee,
        SettleProjection(c.hearing, c.onset, h, t, s, sp, ctx.speaker, ctx.reset_turn),
        Recognition(c.reading, ctx.recognizer, h, t, sp, ctx.reader, ctx.stretch_reader),
        Tone(c.tone, ctx.tone, ctx.feelings, h, ctx.reader, ctx.game_state),
    ]
    heads = _heads(ctx)
    if heads is not None:
        stages.append(DuplexHeads(c.hearing, heads, ctx.resources, ctx.strategy.needs_heads, h, t, s, sp))
    if ctx.strategy.needs_turn_model:
        cascade = CascadeConfig()
        stages.append(SmartTurn(cascade, h, t, parts.turn_model or smart_turn_analyzer(cascade)))
    stages += [
        Floor(c.reading, ctx.strategy, ctx.clock, ctx.recognizer, _endpoint(ctx), ctx.reader, ctx.stretch_reader,
              h, t, s, sp, addressee),
        Temperament(c.temperament, ctx.strategy, ctx.persona, ctx.barks, ctx.speaker, h, t, s, sp, ctx.game_state,
                    ctx.rng),
        HoldLine(c.addressee, ctx.strategy, h, sp, ctx.hold_events),
        PlayerProfile(c.addressee, ctx.addressee, addressee),
        Act(c.hearing, c.onset, ctx.strategy, ctx.clock, ctx.persona, ctx.game_state, ctx.rng, ctx.answers,
            ctx.reader, ctx.speaker, ctx.feelings, h, t, s, sp, ctx.reset_turn),
        Speak(ctx.speaker, h),
        Remember(ctx.memory, ctx.feelings),
    ]
    if floor_events and heads is not None:
        stages.append(FloorReport(h, t, explain))
    return stages
