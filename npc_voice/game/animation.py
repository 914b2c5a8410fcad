"""Animation drivers: the NPC voice events turned into face, mouth, body and subtitle state.

The ``Animator`` holds no art. It says what the NPC's face and body should be doing this frame
(expression and its weight, mouth opening and width, pose, nod and startle phases, subtitle and
caption text) and the game draws that however it likes. Lip sync follows the phoneme-timed visemes
at the time the audio plays; when a reply has no viseme track, the NPC's output level opens the jaw.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pygame

from npc_voice.game import events as ge

# viseme -> (jaw opening 0..1, mouth width: <1 rounded, >1 spread)
MOUTH: dict[str, tuple[float, float]] = {
    "sil": (0.0, 1.0), "PP": (0.0, 0.9), "FF": (0.15, 1.0), "TH": (0.25, 1.0), "DD": (0.35, 1.0),
    "kk": (0.35, 1.0), "CH": (0.3, 0.65), "SS": (0.15, 1.1), "nn": (0.25, 1.0), "RR": (0.3, 0.75),
    "aa": (1.0, 1.0), "E": (0.7, 1.1), "ih": (0.5, 1.1), "oh": (0.8, 0.75), "ou": (0.45, 0.6),
}
NOD_S = 0.7
STARTLE_S = 0.8
SUBTITLE_HOLD_S = 2.5
ASIDE_HOLD_S = 1.2  # the NPC's own "mm-hm" shows this long: it has no speech_end to start the usual hold
CAPTION_HOLD_S = 4.0
MOUTH_RATE = 25.0  # 1/s: how fast the jaw follows its target (a 40 ms time constant)
EXPRESSION_RATE = 4.0
ANTICIPATION_RATE = 6.0  # 1/s: anticipation follows the model within about a chunk, without flicker
AMPLITUDE_GAIN = 8.0


@dataclass
class Pose:
    """What the NPC looks like this frame; read it to draw."""

    expression: str = "neutral"
    expression_weight: float = 0.0  # 0 neutral .. 1 full expression
    mouth_open: float = 0.0
    mouth_width: float = 1.0
    viseme: str = "sil"
    body: str = "idle"  # idle | talking | listening | nodding | startled
    nod: float = 0.0  # 0..1 phase of a backchannel nod (0 when not nodding)
    startle: float = 0.0  # 1 right after an interruption, falling to 0
    anticipation: float = 0.0  # 0..1: the model expects the player to hand over the turn now or soon (lean in)
    speaking: bool = False
    subtitle: str = ""  # the words said so far, as the line writes them ("Aye, I can"; "Aye—" if cut there)
    caption: str = ""  # what the NPC heard the player say


class Animator:
    """Consumes one NPC's voice events and advances its pose each frame."""

    def __init__(self) -> None:
        self.pose = Pose()
        self.player_emotion = "neutral"
        self._target_expression = ("neutral", 0.0)
        self._visemes: list[tuple[float, str]] = []
        self._words: list[tuple[float, str]] = []
        self._line_cut = False
        self._subtitle_until = 0.0
        self._caption_until = 0.0
        self._nod_until = 0.0
        self._startle_until = 0.0
        self._anticipation_target = 0.0

    def handle(self, event: pygame.event.Event) -> None:
        """Apply one NPC voice event (already due: its time is now)."""
        now = event.t
        if event.type == ge.NPC_SPEECH_START:
            self._speech_start()
        elif event.type == ge.NPC_WORDS:
            self._words += event.words
        elif event.type == ge.NPC_VISEMES:
            self._visemes += event.visemes
        elif event.type == ge.NPC_SPEECH_END:
            self._speech_end(now, event.completed)
        elif event.type == ge.NPC_INTERRUPTED:
            self._interrupted(now)
        elif event.type == ge.NPC_BACKCHANNEL:
            self._nod_until = now + NOD_S
        elif event.type == ge.NPC_BARK and event.kind == "backchannel":
            # Other barks are lines with their own speech_start/words, shown like any line.
            self._aside(now)
        elif event.type == ge.NPC_EMOTION:
            self._emotion(event.who, event.emotion, float(event.intensity))
        elif event.type == ge.NPC_FLOOR:
            self._floor(event.action, event.p_yield, event.p_yield_soon)
        elif event.type == ge.NPC_TRANSCRIPT:
            self._caption(now, event.text, event.final)

    def _speech_start(self) -> None:
        self.pose.speaking = True
        self._words, self._visemes, self._line_cut = [], [], False
        self._subtitle_until = float("inf")

    def _speech_end(self, now: float, completed: bool) -> None:
        self.pose.speaking = False
        self._visemes = [(now, "sil")]
        if completed:
            self._words = [(t, w) for t, w in self._words if t <= now + 0.05]
        self._subtitle_until = now + SUBTITLE_HOLD_S

    def _interrupted(self, now: float) -> None:
        """The line stops where it was cut (its subtitle ends in a dash) and the NPC is startled."""
        self.pose.speaking = False
        self._visemes = [(now, "sil")]
        self._words = [(t, w) for t, w in self._words if t <= now]
        self._line_cut = True
        self._subtitle_until = now + SUBTITLE_HOLD_S
        self._startle_until = now + STARTLE_S

    def _aside(self, now: float) -> None:
        """Its own "mm-hm" while the player talks: a nod, and the aside's words in the bubble."""
        self._nod_until = now + NOD_S
        if not self.pose.speaking:
            self._words, self._line_cut = [], False
            self._subtitle_until = now + ASIDE_HOLD_S

    def _emotion(self, who: str, emotion: str, intensity: float) -> None:
        """The NPC's emotion becomes its target expression; the player's is only remembered."""
        if who == "npc":
            self._target_expression = (emotion, intensity)
        else:
            self.player_emotion = emotion

    def _floor(self, action: str, p_yield: float, p_yield_soon: float) -> None:
        # while it listens, how sure the model is that the player is handing over the turn
        self._anticipation_target = max(p_yield, p_yield_soon) if action == "listen" else 0.0

    def _caption(self, now: float, text: str, final: bool) -> None:
        """What the NPC heard the player say; a partial transcript trails off."""
        self.pose.caption = text if final else f"{text}…"
        self._caption_until = now + CAPTION_HOLD_S

    def update(self, dt: float, now: float | None = None, level: float = 0.0, listening: bool = False) -> Pose:
        """Advance to ``now`` (``time.monotonic()``); ``level`` is the NPC's output RMS (0..1)."""
        now = time.monotonic() if now is None else now
        p = self.pose
        self._mouth(dt, now, level)
        self._expression(dt)
        p.startle = max(0.0, (self._startle_until - now) / STARTLE_S)
        target = 0.0 if p.speaking else self._anticipation_target
        p.anticipation += (target - p.anticipation) * min(1.0, ANTICIPATION_RATE * dt)
        p.nod = 1.0 - (self._nod_until - now) / NOD_S if now < self._nod_until else 0.0
        p.body = self._body(listening)
        self._texts(now)
        return p

    def _expression(self, dt: float) -> None:
        """Fade the current expression out before switching to a new one; else ease to the target weight."""
        p = self.pose
        name, weight = self._target_expression
        if name != p.expression:
            p.expression_weight = max(0.0, p.expression_weight - EXPRESSION_RATE * dt)
            if p.expression_weight == 0.0:
                p.expression = name
        else:
            p.expression_weight += (weight - p.expression_weight) * min(1.0, EXPRESSION_RATE * dt)

    def _body(self, listening: bool) -> str:
        """The body pose, by priority: a startle, a nod, talking, listening, idle."""
        p = self.pose
        if p.startle > 0:
            return "startled"
        if p.nod > 0:
            return "nodding"
        if p.speaking:
            return "talking"
        if listening:
            return "listening"
        return "idle"

    def _texts(self, now: float) -> None:
        """The subtitle (the words said so far, as the line writes them, with a dash if the line was cut) and the
        caption, while they hold."""
        p = self.pose
        if now < self._subtitle_until:
            text = " ".join(w for t, w in self._words if t <= now)
            p.subtitle = f"{text.rstrip(',;:')}—" if self._line_cut and text else text
        else:
            p.subtitle = ""
        if now >= self._caption_until:
            p.caption = ""

    def _mouth(self, dt: float, now: float, level: float) -> None:
        p = self.pose
        while len(self._visemes) > 1 and self._visemes[1][0] <= now:
            self._visemes.pop(0)
        current = self._visemes[0] if self._visemes and self._visemes[0][0] <= now else None
        if current is not None and (len(self._visemes) > 1 or now - current[0] < 0.3):
            p.viseme = current[1]
            target, width = MOUTH.get(p.viseme, MOUTH["DD"])
        elif p.speaking:  # no phoneme timing for this audio: open the jaw with the loudness
            p.viseme = "sil"
            target, width = min(1.0, level * AMPLITUDE_GAIN), 1.0
        else:
            p.viseme = "sil"
            target, width = 0.0, 1.0
        k = min(1.0, MOUTH_RATE * dt)
        p.mouth_open += (target - p.mouth_open) * k
        p.mouth_width += (width - p.mouth_width) * k
