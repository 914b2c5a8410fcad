"""The pygame events an NPC voice posts, one custom type per kind (see docs/game.md).

Every posted event carries ``npc_id`` (which NPC), ``t`` (``time.monotonic()`` when it takes effect:
for speech, the moment its audio reaches the speaker), ``voice_event`` (the typed
``npc_voice.events`` object) and that object's fields flattened (``text``, ``emotion``, ...), so a
game can write ``if event.type == NPC_SPEECH_START: print(event.npc_id, event.text)``.
"""

from __future__ import annotations

from typing import Any

import pygame

from npc_voice import events as ev

NPC_READY = pygame.event.custom_type()  # the sidecar opened this NPC's session
NPC_ERROR = pygame.event.custom_type()  # the sidecar refused something: code, message
NPC_SPEECH_START = pygame.event.custom_type()  # line_id, text
NPC_SPEECH_END = pygame.event.custom_type()  # line_id, completed
NPC_RESPONSE = pygame.event.custom_type()  # topic, text, confidence, heard, latency_ms
NPC_INTERRUPTED = pygame.event.custom_type()  # line_id, heard
NPC_HELD = pygame.event.custom_type()  # line_id, held: it paused its line as the player talked over it (or resumes)
NPC_BACKCHANNEL = pygame.event.custom_type()  # heard
NPC_BARK = pygame.event.custom_type()  # kind, line_id, text: a line of its own (greeting, idle, farewell, ...)
NPC_TRANSCRIPT = pygame.event.custom_type()  # text, final
NPC_WORDS = pygame.event.custom_type()  # words: [(t, word)] with absolute times, each word as written ("Aye,")
NPC_VISEMES = pygame.event.custom_type()  # visemes: [(t, viseme)] with absolute times
NPC_EMOTION = pygame.event.custom_type()  # who, emotion, intensity, valence, arousal
NPC_NOTICE = pygame.event.custom_type()  # code, message
NPC_FLOOR = pygame.event.custom_type()  # action, rule, why, p_yield, p_yield_soon, p_player, p_backchannel, ..., p_end
# kind (offer, give, set_state, trigger), line_id, index, and item, price, count / state / name, word: the NPC just
# said the word a line's action waits for; the game carries it out (or refuses it) itself
NPC_ACTION = pygame.event.custom_type()
# Not about one NPC (no npc_id): the hub changed sound device (the one in use was lost): status, has_mic, reason
VOICE_DEVICE = pygame.event.custom_type()

BY_KIND: dict[str, int] = {
    "speech_start": NPC_SPEECH_START,
    "speech_end": NPC_SPEECH_END,
    "response": NPC_RESPONSE,
    "interrupted": NPC_INTERRUPTED,
    "held": NPC_HELD,
    "backchannel": NPC_BACKCHANNEL,
    "bark": NPC_BARK,
    "transcript": NPC_TRANSCRIPT,
    "words": NPC_WORDS,
    "visemes": NPC_VISEMES,
    "emotion": NPC_EMOTION,
    "notice": NPC_NOTICE,
    "floor": NPC_FLOOR,
    "action": NPC_ACTION,
}
ALL_TYPES: frozenset[int] = frozenset(BY_KIND.values()) | {NPC_READY, NPC_ERROR}


def effect_time(base: float, event: ev.Event) -> float:
    """When ``event`` takes effect: ``base`` is when its reply's audio starts playing (or it arrived)."""
    return base + (event.offset or 0.0)


def to_pygame(npc_id: str, base: float, event: ev.Event, **extra: Any) -> pygame.event.Event:
    """A pygame event for ``event`` of a reply whose audio starts at ``base``; offsets become absolute times."""
    t = effect_time(base, event)
    attrs = event.to_wire()
    attrs.pop("type")
    attrs.pop("offset", None)
    if isinstance(event, ev.Words):
        attrs["words"] = [(base + o, w) for o, w in event.words]
    elif isinstance(event, ev.Visemes):
        attrs["visemes"] = [(base + o, v) for o, v in event.visemes]
    return pygame.event.Event(BY_KIND[event.type], npc_id=npc_id, t=t, voice_event=event, **attrs, **extra)
