"""Emberbrook, the demo village: walk up to a villager and talk (or type) to them.

The game starts the sidecar itself on a background thread (a loading screen keeps the window alive
while the models load) and stops it on exit. Each villager is an ``NPCVoice``; the HUD shows the
microphone level, who is speaking, the villager's feeling and the last response latency, and the
player's purse, satchel and quest. Talking changes the game: the villagers' lines carry actions
(an offer, a sale, the quest moving on) that arrive as ``NPC_ACTION`` events, and the villagers
remember the player (by the ``--player`` id) in a memory file next to the game's save.

Ctrl-C (SIGINT) and SIGTERM end the game as Esc does, at the next frame: the window closes, the sessions
close and the sidecar (and its render process) stop; ``run`` then returns 128 + the signal's number (130
for Ctrl-C, 143 for SIGTERM), as a shell reports a program a signal ended. A second one while it shuts down
interrupts the shutdown itself. They are caught even when the game was started with them ignored (a background
job of a shell without job control), as the sidecar catches them: a game left running that way would outlive
the sidecar it started.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pygame

from demo_game import art
from demo_game.save import SaveGame, default_dir
from demo_game.script import SCENARIOS, Script
from npc_voice.game import NPCVoice, VoiceHub
from npc_voice.game import events as ge
from npc_voice.transport.process import SidecarProcess

SPEED = 150.0  # px/s
TALK_RADIUS = 260.0
QUEST = {"none": "ask around the village", "dragon_seen": "a dragon was seen: get armed",
         "dragon_slain": "the dragon is slain"}
QUIT_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # end the game as Esc does (the exit code says which)
SIDECAR_SPAWN_S = 5.0  # quitting while the sidecar starts: starting its process takes this long at most
UP_LINE = "Emberbrook is up: Esc quits (so does Ctrl-C here)"  # printed when the village loop starts
SHOT_WAIT_S = 60.0  # --screenshot waits this long at most for the villagers to wake (a slow or overloaded sidecar)
PLAYER_LOOK = art.Look(skin=(240, 200, 170), hair=(200, 120, 50), tunic=(60, 110, 180), extra=(150, 40, 50),
                       style="hero")


@dataclass
class Villager:
    """An NPC in the village: where it stands, how it looks, and its voice component."""

    npc_id: str
    name: str
    persona: str
    pos: tuple[float, float]
    look: art.Look
    state: dict[str, Any]
    voice: NPCVoice | None = None


def villagers() -> list[Villager]:
    return [
        Villager("smith", "Brom Ironhand, blacksmith", "blacksmith", (225, 262),
                 art.Look((214, 160, 120), (92, 52, 30), (120, 60, 40), (90, 64, 44), "smith"),
                 {"reputation": 10, "time_of_day": "day"}),
        Villager("herbalist", "Mirela Thornwick, herbalist", "herbalist", (630, 262),
                 art.Look((236, 196, 170), (214, 214, 220), (110, 140, 90), (170, 80, 120), "herbalist"),
                 {"player_health": 80, "time_of_day": "day", "herb_quest": "not_started", "season": "summer"}),
        Villager("guard", "Sergeant Vorn, gate guard", "guard", (548, 540),
                 art.Look((200, 150, 110), (70, 50, 40), (90, 40, 40), (130, 136, 146), "guard"),
                 {}),
    ]


class Game:
    """The demo: loading screen, then the village loop; ``run`` returns when the player quits."""

    def __init__(
        self,
        *,
        audio: str = "auto",
        device: int | str | None = None,
        sidecar: str | None = None,
        scripted: bool = False,
        screenshot: Path | None = None,
        frames: int = 0,
        shots: Path | None = None,
        frametime: bool = False,
        scenario: str = "tour",
        player: str = "player1",
        save_dir: Path | None = None,
        new_game: bool = False,
    ) -> None:
        pygame.init()
        pygame.display.set_caption("Emberbrook: a village that talks back")
        self.screen = pygame.display.set_mode((art.W, art.H))
        self.clock = pygame.time.Clock()
        self.font = pygame.font.SysFont("dejavusans", 15)
        self.small = pygame.font.SysFont("dejavusans", 12)
        self.bold = pygame.font.SysFont("dejavusans", 15, bold=True)
        self.title = pygame.font.SysFont("dejavuserif", 30, bold=True)
        self.audio_mode, self.device, self.sidecar_address = audio, device, sidecar
        self.screenshot, self.frames, self.shots, self.frametime = screenshot, frames, shots, frametime
        self.village = art.paint_village()
        self.villagers = villagers()
        self.player = [480.0, 440.0]
        self.facing = (0.0, -1.0)
        self.walking = False
        self.autopilot: tuple[float, float] | None = None
        self.autopilot_face = (0.0, 0.0)  # where the villager the autopilot walks to stands
        self.arrived_at = 0.0  # when the autopilot's last walk ended
        self.typing: str | None = None
        self.hub: VoiceHub | None = None
        self.proc: SidecarProcess | None = None
        self.loader: threading.Thread | None = None  # starts the sidecar (``_start_sidecar``)
        self.spawned = threading.Event()  # the loader made ``proc`` (or failed to): it can be stopped
        self.load_error: str | None = None
        self.quit_signal: int | None = None  # SIGINT or SIGTERM arrived: the game ends at the next frame
        self.previous_handlers: dict[int, Any] = {}
        self.seen: list[tuple[str, str, float]] = []
        self.log: list[tuple[float, str]] = []
        self.script = Script(SCENARIOS[scenario](), self._shot) if scripted else None
        self.player_id = player
        self.save_dir = save_dir or default_dir()
        self.save_path = self.save_dir / "save.json"
        self.memory_path = self.save_dir / "memory.sqlite3"
        if new_game:
            self._new_game()
        self.save = SaveGame.load(self.save_path)
        self.frame_ms: list[tuple[float, bool]] = []
        self.t0 = time.monotonic()

    # ------------------------------------------------------------------ start-up

    def _new_game(self) -> None:
        """Start over: the save goes, and every villager forgets this player."""
        self.save_path.unlink(missing_ok=True)
        if self.memory_path.exists():
            from npc_voice.memory.store import MemoryStore

            store = MemoryStore(self.memory_path)
            try:
                store.forget(self.player_id)
            finally:
                store.close()

    def _start_sidecar(self) -> None:
        try:
            try:
                self.proc = SidecarProcess(procs=1, memory=self.memory_path)  # one player: sessions in its process
            finally:
                self.spawned.set()
            self.proc.wait_ready()
            self.sidecar_address = self.proc.address
        except Exception as exc:  # noqa: BLE001 - shown on the loading screen
            self.load_error = str(exc)

    def _loading(self) -> bool:
        """Keep the window responsive while the sidecar loads; False if the player quit."""
        if self.sidecar_address is None:
            self.loader = threading.Thread(target=self._start_sidecar, name="demo-sidecar-start", daemon=True)
            self.loader.start()
        frame = 0
        while self.sidecar_address is None or (self.proc is not None and self.proc.startup_s == 0.0):
            if self.quit_signal is not None:
                return False
            for event in pygame.event.get():
                if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
                    return False
            self._draw_loading()
            pygame.display.flip()
            frame += 1
            if self.shots is not None and frame == 30:
                self._shot("loading")
            self.clock.tick(30)
            if self.load_error:
                break
        return self.load_error is None

    def _draw_loading(self) -> None:
        t = time.monotonic() - self.t0
        self.screen.blit(self.village.background, (0, 0))
        veil = pygame.Surface((art.W, art.H), pygame.SRCALPHA)
        veil.fill((16, 20, 30, 200))
        self.screen.blit(veil, (0, 0))
        self._center(self.title, "Emberbrook", (250, 220, 160), art.H // 2 - 70)
        self._center(self.font, "a village that talks back: walk up to someone and speak", (220, 220, 230),
                     art.H // 2 - 30)
        msg = self.load_error or "waking the villagers (loading speech models, about 15 s)"
        self._center(self.font, msg, (255, 140, 120) if self.load_error else (200, 200, 210), art.H // 2 + 50)
        for i in range(8):
            a = t * 4 + i * math.pi / 4
            alpha = int(255 * ((i + 1) / 8))
            pygame.draw.circle(self.screen, (250, 200, 120, alpha), (art.W // 2 + 16 * math.cos(a),
                                                                     art.H // 2 + 16 + 16 * math.sin(a)), 3)

    def _center(self, font: pygame.font.Font, text: str, colour: tuple, y: int) -> None:
        img = font.render(text, True, colour)
        self.screen.blit(img, img.get_rect(midtop=(art.W // 2, y)))

    def _connect(self) -> None:
        assert self.sidecar_address is not None
        self.hub = VoiceHub(self.sidecar_address, audio=self.audio_mode, device=self.device,
                            player=self.player_id)
        for v in self.villagers:
            v.voice = NPCVoice(self.hub, v.npc_id, v.persona, position=v.pos, state=v.state,
                               hearing_radius=TALK_RADIUS)
        self._note(f"audio: {self.hub.status}")

    # ------------------------------------------------------------------ the loop

    def run(self) -> int:
        """Play until the player quits: 0 (Esc, the window closed, or a screenshot or scripted run done), 1 (the
        sidecar failed to start), or 128 + the number of the signal that ended the game (130: Ctrl-C)."""
        self._catch_signals()
        try:
            if not self._loading():
                return self._signal_code() or (1 if self.load_error else 0)
            self._connect()
            print(UP_LINE, flush=True)
            return self._signal_code() or self._loop()
        finally:
            if self.hub is not None:
                self.hub.close()
            pygame.quit()  # the window closes now; the sidecar may take a second or two to stop
            if self.frametime:
                self._report_frametime()
            self._stop_sidecar()
            self._release_signals()

    def _catch_signals(self) -> None:
        """SIGINT and SIGTERM end the game at its next frame (the handler only notes which came: the loop never
        waits for it), also when inherited ignored. Only the main thread can catch signals."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in QUIT_SIGNALS:
            self.previous_handlers[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.quit_signal is None:
            self.quit_signal = signum
            self._release_signals()  # a second one interrupts the shutdown, as it would have interrupted the game

    def _release_signals(self) -> None:
        """Put back the handlers the game found (SDL's own, which Python cannot name, as the default)."""
        for sig, previous in self.previous_handlers.items():
            signal.signal(sig, signal.SIG_DFL if previous is None else previous)
        self.previous_handlers = {}

    def _signal_code(self) -> int:
        """128 + the signal that ended the game, as a shell reports it (130: Ctrl-C); 0 if none did."""
        return 0 if self.quit_signal is None else 128 + self.quit_signal

    def _stop_sidecar(self) -> None:
        """Stop the sidecar the game started, also one still loading (whose loader then gives up)."""
        if self.loader is not None:
            self.spawned.wait(SIDECAR_SPAWN_S)
        if self.proc is not None:
            self.proc.stop()
        if self.loader is not None:
            self.loader.join(SIDECAR_SPAWN_S)

    def awake(self) -> bool:
        """Every villager's session is open, or was refused for good (a broken persona is worth a shot too):
        the client asks again only after a ``capacity`` refusal."""
        for v in self.villagers:
            if v.voice is None:
                return False
            waiting = v.voice.error is None or v.voice.error.startswith("capacity:")  # opening, or to be asked again
            if not v.voice.ready and waiting:
                return False
        return True

    def _loop(self) -> int:
        frame = 0
        started = time.monotonic()
        while True:
            dt = min(0.05, self.clock.tick(60) / 1000.0)
            if self.quit_signal is not None:  # Ctrl-C or SIGTERM: as Esc
                return self._signal_code()
            t_work = time.perf_counter()
            for event in pygame.event.get():
                if event.type == pygame.QUIT:
                    return 0
                if event.type == pygame.KEYDOWN and self._key(event):
                    return 0
                if event.type == ge.VOICE_DEVICE:  # the sound device was lost: the hub types from now on
                    self._note(f"audio: {event.status}")
                for v in self.villagers:
                    if v.voice is not None and v.voice.process_events(event):
                        self._on_voice_event(v, event)
            if self.script is not None:
                self.script.tick(self)
            self._move(dt)
            assert self.hub is not None
            self.hub.listen_from((self.player[0], self.player[1]), self.facing)
            world = self.save.state()
            for v in self.villagers:
                if v.voice is not None:
                    v.voice.update(dt, {**v.state, **world})
            self._draw()
            pygame.display.flip()
            active = self.hub.player_speaking or any(v.voice is not None and v.voice.speaking for v in self.villagers)
            self.frame_ms.append(((time.perf_counter() - t_work) * 1000.0, active))
            frame += 1
            if self.screenshot is not None and frame >= self.frames and (
                self.awake() or time.monotonic() - started > SHOT_WAIT_S
            ):
                self._save(self.screenshot)
                return 0
            if self.script is not None and self.script.finished and (self.shots or self.frametime):
                return 0

    def _key(self, event: pygame.event.Event) -> bool:
        """Keyboard: True to quit."""
        if self.typing is not None:
            if event.key == pygame.K_RETURN:
                if self.typing.strip():
                    self.say(self.typing.strip())
                self.typing = None
            elif event.key == pygame.K_ESCAPE:
                self.typing = None
            elif event.key == pygame.K_BACKSPACE:
                self.typing = self.typing[:-1]
            elif event.unicode and event.unicode.isprintable() and len(self.typing) < 80:
                self.typing += event.unicode
            return False
        if event.key == pygame.K_ESCAPE:
            return True
        if event.key in (pygame.K_RETURN, pygame.K_t):
            self.typing = ""
        return False

    def say(self, text: str) -> None:
        assert self.hub is not None
        self.hub.say(text)
        self._note(f"you: {text}")

    def walk_to(self, npc_id: str) -> None:
        v = next(v for v in self.villagers if v.npc_id == npc_id)
        self.autopilot = (v.pos[0] + 64, v.pos[1] + 22)  # in front, a little to the side: both stay visible
        self.autopilot_face = v.pos

    def speaking(self, npc_id: str) -> bool:
        v = next(v for v in self.villagers if v.npc_id == npc_id)
        return v.voice is not None and v.voice.speaking

    def seen_since(self, kind: str, npc_id: str, since: float) -> bool:
        return any(k == kind and n == npc_id and t >= since for k, n, t in self.seen)

    def _on_voice_event(self, v: Villager, event: pygame.event.Event) -> None:
        kind = next((k for k, t in ge.BY_KIND.items() if t == event.type), None)
        if kind is not None:
            self.seen.append((kind, v.npc_id, time.monotonic()))
        short = v.name.split(",")[0].split()[0]
        if event.type == ge.NPC_ACTION:
            self.seen.append((f"action:{event.kind}", v.npc_id, time.monotonic()))
            self._act(short, v.npc_id, event)
        elif event.type == ge.NPC_RESPONSE:
            self._note(f"{short}: {event.text}")
        elif event.type == ge.NPC_INTERRUPTED:
            self._note(f"{short} stops: interrupted")
        elif event.type == ge.NPC_BACKCHANNEL:
            self._note(f"{short} hears a backchannel and goes on")
        elif event.type == ge.NPC_BARK and event.kind != "backchannel":
            self._note(f"{short} ({event.kind}): {event.text}")
        elif event.type == ge.NPC_EMOTION and event.who == "npc":
            self._note(f"{short} feels {event.emotion}")
        elif event.type == ge.NPC_ERROR and not any(f"error {event.code}" in line for _, line in self.log):
            self._note(f"{short}: sidecar error {event.code} ({event.message})")

    def _act(self, who: str, npc_id: str, event: pygame.event.Event) -> None:
        """A villager said the word its line's action waits for: the game does it, by its own rules."""
        save = self.save
        if event.kind == "offer":
            save.offer = {"item": event.item, "price": event.price, "npc": npc_id}
            self._note(f"{who} offers a {event.item} for {event.price} gold")
        elif event.kind == "give":
            price, count = getattr(event, "price", 0), getattr(event, "count", 1)
            if price > save.gold:  # the persona's conditions should not let this happen: the game still refuses
                self._note(f"{who} would sell a {event.item} for {price} gold: you cannot pay")
                return
            save.gold -= price
            save.satchel += [event.item] * count
            if save.offer and save.offer["item"] == event.item:
                save.offer = None
            self._note(f"{who} hands you a {event.item}" + (f" for {price} gold" if price else ""))
        elif event.kind == "set_state":
            for key, value in event.state.items():
                if key == "quest_stage":
                    save.quest_stage = value
                    self._note(f"quest: {QUEST.get(value, value)}")
        else:
            self._note(f"{who}: {event.name}")
        save.write(self.save_path)

    def _note(self, text: str) -> None:
        self.log.append((time.monotonic(), text))
        del self.log[:-6]

    def _move(self, dt: float) -> None:
        dx = dy = 0.0
        if self.autopilot is not None:
            tx, ty = self.autopilot
            ddx, ddy = tx - self.player[0], ty - self.player[1]
            dist = math.hypot(ddx, ddy)
            if dist < 4:
                self._arrive()
            else:
                dx, dy = ddx / dist, ddy / dist
        elif self.typing is None:
            keys = pygame.key.get_pressed()
            dx = (keys[pygame.K_d] or keys[pygame.K_RIGHT]) - (keys[pygame.K_a] or keys[pygame.K_LEFT])
            dy = (keys[pygame.K_s] or keys[pygame.K_DOWN]) - (keys[pygame.K_w] or keys[pygame.K_UP])
        self.walking = bool(dx or dy)
        if not self.walking:
            return
        norm = math.hypot(dx, dy)
        dx, dy = dx / norm, dy / norm
        self.facing = (dx, dy)
        before = list(self.player)
        for axis, d in ((0, dx), (1, dy)):
            new = list(self.player)
            new[axis] += d * SPEED * dt
            feet = pygame.Rect(new[0] - 9, new[1] - 6, 18, 8)
            if (art.W > new[0] > 10 and art.H - 10 > new[1] > 20
                    and feet.collidelist(self.village.blockers) < 0
                    and all(math.dist(new, v.pos) > 22 for v in self.villagers)):
                self.player = new
        if self.autopilot is not None and math.dist(before, self.player) < 0.25 * SPEED * dt:
            self._arrive()  # something is in the way: close enough, stop here rather than push forever

    def _arrive(self) -> None:
        """The autopilot's walk is over: turn towards the villager."""
        self.autopilot = None
        self.arrived_at = time.monotonic()
        fx, fy = self.autopilot_face[0] - self.player[0], self.autopilot_face[1] - self.player[1]
        norm = math.hypot(fx, fy) or 1.0
        self.facing = (fx / norm, fy / norm)

    # ------------------------------------------------------------------ drawing

    def _draw(self) -> None:
        t = time.monotonic() - self.t0
        s = self.screen
        s.blit(self.village.background, (0, 0))
        art.draw_ambient(s, self.village, t)
        assert self.hub is not None
        addressee = self.hub.addressee
        actors: list[tuple[float, Any]] = [(self.player[1], None)] + [(v.pos[1], v) for v in self.villagers]
        for _, v in sorted(actors, key=lambda a: a[0]):
            if v is None:
                idle = art.Pose(body="idle")
                art.draw_character(s, *self.player, PLAYER_LOOK, idle, t, self.facing[0], self.walking)
                continue
            if v.npc_id == addressee:
                ring = pygame.Surface((60, 22), pygame.SRCALPHA)
                pygame.draw.ellipse(ring, (255, 220, 110, 160 + int(60 * math.sin(t * 4))), ring.get_rect(), 3)
                s.blit(ring, (v.pos[0] - 30, v.pos[1] - 11))
            pose = v.voice.pose if v.voice is not None else art.Pose()
            art.draw_character(s, *v.pos, v.look, pose, t, self.player[0] - v.pos[0])
            if math.dist(self.player, v.pos) < TALK_RADIUS:
                tag = self.small.render(v.name.split(",")[0], True, (255, 255, 255))
                bg = pygame.Surface((tag.get_width() + 10, tag.get_height() + 4), pygame.SRCALPHA)
                bg.fill((0, 0, 0, 120))
                s.blit(bg, (v.pos[0] - bg.get_width() / 2, v.pos[1] + 8))
                s.blit(tag, (v.pos[0] - tag.get_width() / 2, v.pos[1] + 10))
        for v in self.villagers:
            if v.voice is not None:
                v.voice.draw(s, (int(v.pos[0]), int(v.pos[1] - 62)), self.font)
        self._draw_hud(t)

    def _panel(self, rect: pygame.Rect, alpha: int = 190) -> None:
        p = pygame.Surface(rect.size, pygame.SRCALPHA)
        pygame.draw.rect(p, (22, 20, 28, alpha), p.get_rect(), border_radius=12)
        pygame.draw.rect(p, (200, 170, 110, 220), p.get_rect(), 2, border_radius=12)
        self.screen.blit(p, rect)

    def _draw_hud(self, t: float) -> None:
        s = self.screen
        hub = self.hub
        assert hub is not None
        title = self.title.render("Emberbrook", True, (250, 226, 170))
        s.blit(self.title.render("Emberbrook", True, (40, 30, 20)), (14, 8))
        s.blit(title, (12, 6))
        hint = "WASD/arrows walk · Enter: type to speak · Esc quit"
        s.blit(self.small.render(hint, True, (250, 250, 240)), (14, 44))
        # microphone panel
        mic = pygame.Rect(10, art.H - 111, 300, 101)  # the status names the devices in use: up to 3 lines
        self._panel(mic)
        label = "MIC" if hub.has_mic else "VOICE (typed)"
        s.blit(self.bold.render(label, True, (250, 230, 180)), (mic.x + 12, mic.y + 8))
        level = max(0.0, min(1.0, (hub.mic_level_dbfs + 60.0) / 60.0))
        bar = pygame.Rect(mic.x + 12, mic.y + 32, 276, 12)
        pygame.draw.rect(s, (50, 50, 60), bar, border_radius=6)
        fill = bar.copy()
        fill.w = int(bar.w * level)
        pygame.draw.rect(s, (110, 220, 120) if level < 0.8 else (240, 200, 80), fill, border_radius=6)
        db = self.small.render(f"{hub.mic_level_dbfs:6.1f} dBFS", True, (220, 220, 220))
        s.blit(db, (mic.right - 86, mic.y + 10))
        for i, line in enumerate(_wrap_text(hub.status, self.small, 276)[:3]):
            s.blit(self.small.render(line, True, (200, 200, 215)), (mic.x + 12, mic.y + 50 + i * 15))
        # who is speaking
        speaking = [v for v in self.villagers if v.voice is not None and v.voice.speaking]
        who = None
        if hub.player_speaking:
            target = next((v for v in self.villagers if v.npc_id == hub.addressee), None)
            who = f"you are speaking{f' to {target.name.split()[0]}' if target else ' (nobody in earshot)'}"
        elif speaking:
            who = f"{speaking[0].name.split()[0]} is speaking"
        if who:
            img = self.bold.render(who, True, (255, 240, 200))
            box = img.get_rect(midtop=(art.W // 2, 10)).inflate(24, 12)
            self._panel(box)
            s.blit(img, img.get_rect(center=box.center))
        # the addressed villager's portrait, feeling and latency
        target = next((v for v in self.villagers if v.npc_id == hub.addressee), None)
        if target is not None and target.voice is not None:
            voice = target.voice
            box = pygame.Rect(art.W - 230, art.H - 246, 220, 236)
            self._panel(box, 210)
            colour = art.EMOTION_COLOURS.get(voice.pose.expression, (170, 170, 170))
            art.draw_portrait(s, pygame.Rect(box.x + 40, box.y + 10, 140, 140), target.look, voice.pose, t,
                              art._mix((60, 56, 70), colour, 0.35))
            s.blit(self.bold.render(target.name.split(",")[0], True, (250, 230, 180)), (box.x + 12, box.y + 156))
            chip = pygame.Rect(box.x + 12, box.y + 180, 12, 12)
            pygame.draw.circle(s, colour, chip.center, 6)
            feel = f"feels {voice.emotion}" + ("" if voice.pose.body == "idle" else f" · {voice.pose.body}")
            s.blit(self.font.render(feel, True, (230, 230, 235)), (box.x + 30, box.y + 176))
            lat = "—" if voice.last_latency_ms is None else f"{voice.last_latency_ms:.0f} ms"
            s.blit(self.font.render(f"last response: {lat}", True, (200, 220, 240)), (box.x + 12, box.y + 200))
        elif not self.script:
            tip = self.font.render("walk up to a villager to talk", True, (255, 255, 240))
            s.blit(tip, tip.get_rect(midbottom=(art.W // 2, art.H - 14)))
        self._draw_satchel()
        # conversation log, between the microphone panel and the portrait
        now = time.monotonic()
        lines = [(stamp, line) for stamp, line in self.log if now - stamp < 12][-4:]
        if lines:
            box = pygame.Rect(320, art.H - 16 - 17 * len(lines) - 10, 390, 17 * len(lines) + 10)
            self._panel(box, 150)
            for i, (_, line) in enumerate(lines):
                text = line if self.small.size(line)[0] < box.w - 16 else line[:58] + "…"
                s.blit(self.small.render(text, True, (245, 245, 245)), (box.x + 8, box.y + 5 + i * 17))
        if self.script is not None:
            tag = self.small.render(f"hands-free demo · {self.script.label}", True, (255, 230, 150))
            s.blit(tag, tag.get_rect(topright=(art.W - 12, 12)))
        if self.typing is not None:
            box = pygame.Rect(art.W // 2 - 250, art.H - 140, 500, 40)
            self._panel(box, 230)
            cursor = "|" if int(now * 2) % 2 else " "
            s.blit(self.font.render(f"You say: {self.typing}{cursor}", True, (255, 255, 255)),
                   (box.x + 12, box.y + 11))

    def _draw_satchel(self) -> None:
        """The purse, the satchel, a deal on offer and the quest, above the microphone panel."""
        s, save = self.screen, self.save
        box = pygame.Rect(10, art.H - 96 - 8 - 92, 300, 92)
        self._panel(box)
        s.blit(self.bold.render(f"Purse: {save.gold} gold", True, (250, 215, 120)), (box.x + 12, box.y + 8))
        items = ", ".join(save.satchel) if save.satchel else "empty"
        s.blit(self.font.render(f"Satchel: {items}", True, (235, 235, 240)), (box.x + 12, box.y + 30))
        offer = (f"On offer: {save.offer['item']}, {save.offer['price']} gold" if save.offer else "On offer: —")
        s.blit(self.small.render(offer, True, (200, 220, 240)), (box.x + 12, box.y + 52))
        quest = f"Quest: {QUEST.get(save.quest_stage, save.quest_stage)}"
        s.blit(self.small.render(quest, True, (200, 220, 240)), (box.x + 12, box.y + 70))

    # ------------------------------------------------------------------ output

    def _save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pygame.image.save(self.screen, str(path))

    def _shot(self, name: str) -> None:
        if self.shots is not None:
            self._save(self.shots / f"{name}.png")

    def _report_frametime(self) -> None:
        for label, want in (("idle (no conversation)", False), ("active conversation", True)):
            ms = np.array([m for m, a in self.frame_ms if a == want] or [0.0])
            print(f"frame work time, {label}: n={len(ms)} p50={np.percentile(ms, 50):.2f} ms "
                  f"p99={np.percentile(ms, 99):.2f} ms max={ms.max():.2f} ms")


def _wrap_text(text: str, font: pygame.font.Font, width: int) -> list[str]:
    from npc_voice.game.npc import wrap

    return wrap(text, font, width)
