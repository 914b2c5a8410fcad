"""``NPCVoice``: the drop-in component for one talking NPC (pygame_gui style).

    hub = VoiceHub(address)                                  # once per game
    smith = NPCVoice(hub, "smith", "blacksmith", position=(400, 300))
    # every frame:
    for event in pygame.event.get():
        smith.process_events(event)
    hub.listen_from(player_pos, player_facing)
    smith.update(dt, {"quest_stage": "none"})
    smith.draw(screen, (sx, sy - 60))                       # subtitles and what it heard

``update`` posts the NPC's events (see ``npc_voice.game.events``) when they take effect and never
blocks; ``process_events`` feeds the ones addressed to this NPC to its ``Animator``.
"""

from __future__ import annotations

import time
from typing import Any

import pygame

from npc_voice.game import events as ge
from npc_voice.game.animation import Animator, Pose
from npc_voice.game.audio import spatialise
from npc_voice.game.hub import VoiceHub

BUBBLE_BG = (250, 246, 232)
BUBBLE_FG = (40, 32, 24)
CAPTION_BG = (20, 24, 32, 190)
CAPTION_FG = (200, 230, 255)


class NPCVoice:
    """One NPC's voice: its session, its place in the stereo mix, its animation state."""

    def __init__(
        self,
        hub: VoiceHub,
        npc_id: str,
        persona: str,
        *,
        position: tuple[float, float] = (0.0, 0.0),
        state: dict[str, Any] | None = None,
        hearing_radius: float = 260.0,
    ) -> None:
        self.hub, self.npc_id, self.persona = hub, npc_id, persona
        self.animator = Animator()
        self._state = dict(state or {})
        self._link = hub.attach(npc_id, persona, self._state)
        self._link.position = position
        self._link.radius = hearing_radius
        self.ready = False
        self.error: str | None = None
        self.emotion = "neutral"
        self.last_latency_ms: float | None = None
        self.last_heard = ""

    @property
    def position(self) -> tuple[float, float]:
        return self._link.position

    @property
    def pose(self) -> Pose:
        return self.animator.pose

    @property
    def speaking(self) -> bool:
        return self.animator.pose.speaking

    @property
    def addressed(self) -> bool:
        """The player's voice goes to this NPC."""
        return self.hub.addressee == self.npc_id

    def process_events(self, event: pygame.event.Event) -> bool:
        """Take this NPC's voice events; True if the event was one (the game may still look at it)."""
        if event.type not in ge.ALL_TYPES or getattr(event, "npc_id", None) != self.npc_id:
            return False
        if event.type == ge.NPC_READY:
            self.ready, self.error = True, None  # a refused open that was retried has opened
        elif event.type == ge.NPC_ERROR:
            self.error = f"{event.code}: {event.message}"
        elif event.type == ge.NPC_RESPONSE:
            self.last_latency_ms = getattr(event, "latency_ms", None)
        elif event.type == ge.NPC_EMOTION and event.who == "npc":
            self.emotion = event.emotion
        elif event.type == ge.NPC_TRANSCRIPT and event.final:
            self.last_heard = event.text
        self.animator.handle(event)
        return True

    def update(
        self, dt: float, npc_state: dict[str, Any] | None = None, position: tuple[float, float] | None = None
    ) -> Pose:
        """Once per frame: game state for the persona (sent when it changes), where the NPC stands now."""
        if npc_state:
            changed = {k: v for k, v in npc_state.items() if self._state.get(k) != v}
            if changed:
                self._state.update(changed)
                with self._link.lock:
                    self._link.state_out.update(changed)
        if position is not None:
            self._link.position = position
        gain, pan = spatialise(self.hub.listener, self._link.position, self._link.radius)
        self._link.channel.gain, self._link.channel.pan = gain, pan
        now = time.monotonic()
        for event in [*self.hub.due_events(), *self._link.due(now)]:
            pygame.event.post(event)
        listening = self.addressed and self.hub.player_speaking
        return self.animator.update(dt, now, level=self._link.channel.level, listening=listening)

    def draw(self, surface: pygame.Surface, anchor: tuple[int, int], font: pygame.font.Font | None = None) -> None:
        """Subtitles in a bubble above ``anchor`` (the top of the NPC's head) and what it heard below it."""
        font = font or _default_font()
        pose = self.animator.pose
        if pose.subtitle:
            draw_bubble(surface, pose.subtitle, anchor, font)
        if pose.caption:
            draw_caption(surface, f"heard: “{pose.caption}”", (anchor[0], anchor[1] + 96), font)

    def close(self) -> None:
        self.hub.detach(self.npc_id)


_FONT: pygame.font.Font | None = None


def _default_font() -> pygame.font.Font:
    global _FONT
    if _FONT is None:
        _FONT = pygame.font.Font(None, 22)
    return _FONT


def wrap(text: str, font: pygame.font.Font, width: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and font.size(trial)[0] > width:
            lines.append(line)
            line = word
        else:
            line = trial
    if line:
        lines.append(line)
    return lines


def draw_bubble(
    surface: pygame.Surface, text: str, anchor: tuple[int, int], font: pygame.font.Font, width: int = 260
) -> pygame.Rect:
    """A speech bubble whose tail points down at ``anchor``; kept inside the surface."""
    lines = wrap(text, font, width)
    lh = font.get_linesize()
    w = max(font.size(line)[0] for line in lines) + 20
    h = lh * len(lines) + 14
    rect = pygame.Rect(0, 0, w, h)
    rect.midbottom = (anchor[0], anchor[1] - 12)
    rect.clamp_ip(surface.get_rect().inflate(-8, -8))
    tail = [(anchor[0] - 8, rect.bottom - 2), (anchor[0] + 8, rect.bottom - 2), (anchor[0], anchor[1] - 2)]
    shadow = rect.move(3, 3)
    pygame.draw.rect(surface, (0, 0, 0), shadow, border_radius=10)
    pygame.draw.rect(surface, BUBBLE_BG, rect, border_radius=10)
    pygame.draw.polygon(surface, BUBBLE_BG, tail)
    pygame.draw.rect(surface, BUBBLE_FG, rect, 2, border_radius=10)
    for i, line in enumerate(lines):
        surface.blit(font.render(line, True, BUBBLE_FG), (rect.x + 10, rect.y + 7 + i * lh))
    return rect


def draw_caption(
    surface: pygame.Surface, text: str, center: tuple[int, int], font: pygame.font.Font, width: int = 300
) -> pygame.Rect:
    """A translucent caption box centred at ``center`` (what the NPC heard)."""
    lines = wrap(text, font, width)
    lh = font.get_linesize()
    w = max(font.size(line)[0] for line in lines) + 16
    box = pygame.Surface((w, lh * len(lines) + 8), pygame.SRCALPHA)
    box.fill(CAPTION_BG)
    for i, line in enumerate(lines):
        box.blit(font.render(line, True, CAPTION_FG), (8, 4 + i * lh))
    rect = box.get_rect(midtop=center)
    rect.clamp_ip(surface.get_rect().inflate(-8, -8))
    surface.blit(box, rect)
    return rect
