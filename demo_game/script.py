"""The hands-free demo: the player walks and "types" on their own, showing every duplex behaviour.

Each beat waits on what the NPCs actually do (the events they post), never on fixed timings alone,
so the script shows a greeting (walking up to the smith; the hub cues it, the game does nothing
special), a polite purchase that leaves him content, an answer, a backchannel ("uh huh" while the smith
talks), an interruption (a question over his story) and an emotion change (rude haggling moves him), then
visits the others (the smith sees the player off as they leave).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from demo_game.game import Game


@dataclass
class Beat:
    """One step: start it, then it is over when ``done`` says so or after ``timeout`` seconds."""

    label: str
    start: Callable[[Game], None] = lambda g: None
    done: Callable[[Game], bool] = lambda g: True
    timeout: float = 20.0
    shot: str | None = None  # save a screenshot under this name when the beat ends
    started_at: float = field(default=0.0, init=False)


def approach(npc: str, timeout: float = 10.0, greet_within: float = 3.0) -> Beat:
    """Walk up to the NPC and wait for its greeting bark, which may come while still walking (``until``
    would miss that); a terse NPC does not always greet: then the beat ends ``greet_within`` s after
    arriving."""
    beat = Beat(f"walk up to {npc}, wait for its greeting", start=lambda g: g.walk_to(npc), timeout=timeout)
    beat.done = lambda g: g.autopilot is None and (
        g.seen_since("bark", npc, beat.started_at) or time.monotonic() - g.arrived_at > greet_within)
    return beat


def quiet(npc: str, timeout: float = 10.0) -> Beat:
    """Wait until the NPC is not speaking (so the player's next line does not cut its greeting)."""
    return Beat(f"wait for {npc} to finish", done=lambda g: not g.speaking(npc), timeout=timeout)


def say(text: str) -> Beat:
    return Beat(f"say: {text}", start=lambda g: g.say(text))


def until(kind: str, npc: str, timeout: float = 20.0, shot: str | None = None) -> Beat:
    """Wait for the NPC to post an event of ``kind`` after this beat starts."""
    beat = Beat(f"wait for {npc} {kind}", timeout=timeout, shot=shot)
    beat.done = lambda g: g.seen_since(kind, npc, beat.started_at)
    return beat


def pause(seconds: float, shot: str | None = None) -> Beat:
    beat = Beat(f"pause {seconds}", timeout=seconds, shot=shot)
    beat.done = lambda g: False
    return beat


def demo_beats() -> list[Beat]:
    return [
        pause(4.0, shot="village"),  # idle frames first: the frame-time baseline
        approach("smith"),
        pause(1.0, shot="smith_bark"),
        quiet("smith"),
        say("Hello there, smith!"),
        until("response", "smith"),
        pause(1.2, shot="greeting"),
        until("speech_end", "smith"),
        say("I would like to buy a sword."),  # a polite purchase: his face stays content (issue 34)
        until("response", "smith"),
        pause(1.5, shot="polite_purchase"),
        until("speech_end", "smith"),
        say("What can you tell me about the dragon?"),
        until("speech_start", "smith"),
        pause(2.5, shot="answer"),
        say("uh huh"),
        until("backchannel", "smith", timeout=5, shot="backchannel"),
        pause(1.5),
        say("Wait, stop. How much is a sword?"),
        until("interrupted", "smith", timeout=8),
        pause(0.25, shot="interrupted"),
        until("speech_start", "smith"),
        until("speech_end", "smith"),
        say("That is far too much money, you old cheat! Give me a discount."),  # rude words: they anger him
        until("response", "smith"),
        pause(1.8, shot="haggle"),
        until("speech_end", "smith"),
        approach("herbalist"),
        pause(1.0, shot="herbalist_bark"),
        quiet("herbalist"),
        say("Good morning to you!"),
        until("response", "herbalist"),
        pause(1.5, shot="herbalist"),
        until("speech_end", "herbalist"),
        approach("guard"),
        quiet("guard"),
        say("Hello. Can I pass through the gate?"),
        until("response", "guard"),
        pause(1.5, shot="guard"),
        until("speech_end", "guard"),
    ]


class Script:
    """Runs the beats one after another from the game loop; never blocks a frame."""

    def __init__(self, beats: list[Beat], on_shot: Callable[[str], None]) -> None:
        self.beats = beats
        self.index = -1
        self.on_shot = on_shot

    @property
    def finished(self) -> bool:
        return self.index >= len(self.beats)

    @property
    def label(self) -> str:
        return self.beats[self.index].label if 0 <= self.index < len(self.beats) else ""

    def tick(self, game: Game) -> None:
        now = time.monotonic()
        if self.index >= 0 and not self.finished:
            beat = self.beats[self.index]
            if not beat.done(game) and now - beat.started_at < beat.timeout:
                return
            if beat.shot:
                self.on_shot(beat.shot)
        self.index += 1
        if not self.finished:
            beat = self.beats[self.index]
            beat.started_at = now
            beat.start(game)
