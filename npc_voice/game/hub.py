"""One voice hub per game: the sidecar client, the sound device, and the thread that routes audio.

The game thread never waits here. A background thread takes each 200 ms microphone chunk from the
device, sends it to the NPC the player addresses (the others get silence: they hear nothing), collects
every NPC's replies into its jitter buffer, and turns the replies' events into pygame events queued
for the moment their audio plays (the buffer's ``on_start``). ``NPCVoice.update`` posts the due ones
on the game thread. ``listen_from`` also notices the player entering an NPC's earshot or leaving it and
cues the NPC (``greeting``/``farewell``) on its next chunk.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pygame

from npc_voice import events as ev
from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE
from npc_voice.audio.live import CapturedChunk
from npc_voice.audio.virtual import ClockedDuplexDevice, TypedMic
from npc_voice.game import events as ge
from npc_voice.game.audio import Channel, Mixer, open_audio
from npc_voice.speech.tts import Synthesizer, VoiceSettings
from npc_voice.transport.client import ClientSession, ErrorReply, Reply, SidecarClient

log = logging.getLogger(__name__)

PLAYER_VOICE = VoiceSettings(voice="en-us+f3", pitch=60, rate=160)
TYPED_GAIN = 0.5  # a typed line reaches the sidecar at a normal speaking level, not at full scale
VOICE_FRAME = 160  # 10 ms frames for "is the player talking"
VOICE_DBFS = -42.0
FLOOR_DBFS = -90.0  # digital silence shows as this, not as -270 dB
TALKING_HOLD_S = 0.35
PENDING_KEEP = 20  # replies whose audio never played (dropped by the buffer) are forgotten after this
EARSHOT = 0.6  # of an NPC's hearing radius: nearer, the NPC hears the player (and greets them on the way in)
LEAVE_EARSHOT = 0.75  # farther, the player has left: the gap keeps someone on the edge from being greeted again
CUE_GRACE_S = 3.0  # a cued NPC gets chunks this long even out of range, so a farewell can be said and heard
FACING_COS = 0.0  # the NPC is within 90 degrees of where the player looks: they may be talking to it


@dataclass
class NpcLink:
    """What the hub holds for one NPC: its session, its voice on the mix, its queue of timed events."""

    npc_id: str
    persona: str
    session: ClientSession
    channel: Channel
    position: tuple[float, float] = (0.0, 0.0)
    radius: float = 260.0
    ready_posted: bool = False
    audible_until: float = 0.0  # the NPC's replies carried sound until about then
    in_earshot: bool = False  # the player came within EARSHOT and has not gone past LEAVE_EARSHOT since
    facing: bool | None = None  # the player faces it (None: the game gave no facing)
    cued_until: float = 0.0  # a greeting or farewell was cued: keep stepping the NPC until then
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: dict[int, list[ev.Event]] = field(default_factory=dict)
    heap: list[tuple[float, int, pygame.event.Event]] = field(default_factory=list)
    state_out: dict[str, Any] = field(default_factory=dict)
    _order: itertools.count = field(default_factory=itertools.count)

    def post_at(self, t: float, event: pygame.event.Event) -> None:
        with self.lock:
            heapq.heappush(self.heap, (t, next(self._order), event))

    def due(self, now: float) -> list[pygame.event.Event]:
        """Events whose time has come, oldest first."""
        out = []
        with self.lock:
            while self.heap and self.heap[0][0] <= now:
                out.append(heapq.heappop(self.heap)[2])
        return out

    def take_state(self) -> dict[str, Any]:
        with self.lock:
            state, self.state_out = self.state_out, {}
        return state


class VoiceHub:
    """The game's connection to a sidecar and to the sound card; shared by every ``NPCVoice``.

    ``audio``: ``"auto"`` (microphone when there is one), ``"typed"`` (type to speak, voices on the
    speaker) or ``"silent"`` (no sound card at all). ``status`` says in plain words what was chosen.
    ``talk_mode``: ``"open"`` (an open microphone: the NPCs tell the player's speech from the room's) or
    ``"push_to_talk"`` (only speech while ``push_to_talk(True)`` holds is the player's).
    """

    def __init__(
        self,
        address: str,
        *,
        audio: str = "auto",
        device: int | str | None = None,
        player_voice: VoiceSettings = PLAYER_VOICE,
        talk_mode: str = "open",
    ) -> None:
        if talk_mode not in ("open", "push_to_talk"):
            raise ValueError(f"talk_mode must be 'open' or 'push_to_talk', not {talk_mode!r}")
        self.talk_mode = talk_mode
        self.key_held = False  # push-to-talk: the game's talk key is down
        self.client = SidecarClient(address)
        self.mixer = Mixer()
        self.typed = TypedMic()
        self.player_voice = player_voice
        self._lost: str | None = None  # set by the device's watchdog; the I/O thread falls back
        self._hub_events: list[pygame.event.Event] = []
        self.device, self.has_mic, self.status = open_audio(self.mixer.pull, audio, device, on_lost=self._on_lost)
        self.mic_level_dbfs = FLOOR_DBFS
        self.last_voice_end = 0.0  # monotonic time the player's voice last stopped
        self.addressee: str | None = None
        self.listener: tuple[float, float] = (0.0, 0.0)
        self._links: dict[str, NpcLink] = {}
        self._lock = threading.Lock()
        self._synth = ThreadPoolExecutor(max_workers=1, thread_name_prefix="npc-voice-typed")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="npc-voice-hub", daemon=True)
        self._thread.start()
        self.device.start()

    # ------------------------------------------------------------------ game thread

    @property
    def player_speaking(self) -> bool:
        """The player's voice (spoken or typed) was heard within the last few hundred ms."""
        return time.monotonic() - self.last_voice_end < TALKING_HOLD_S

    def attach(self, npc_id: str, persona: str, state: dict[str, Any] | None = None) -> NpcLink:
        """Open a session for an NPC (returns at once; ``NPC_READY`` is posted when it is open)."""
        session = self.client.open_session(persona=persona, npc_id=npc_id, state=state, floor=True,
                                           talk_mode=self.talk_mode)
        link = NpcLink(npc_id=npc_id, persona=persona, session=session, channel=self.mixer.add(npc_id))
        link.channel.buffer.on_start = lambda seq, t: self._on_start(link, seq, t)
        with self._lock:
            self._links[npc_id] = link
        return link

    def push_to_talk(self, held: bool) -> None:
        """Push-to-talk: the game's talk key went down (True) or up (False)."""
        self.key_held = held

    def detach(self, npc_id: str) -> None:
        with self._lock:
            link = self._links.pop(npc_id, None)
        if link is not None:
            self.mixer.remove(npc_id)
            link.session.close()

    def listen_from(self, position: tuple[float, float], facing: tuple[float, float] | None = None) -> str | None:
        """Where the player stands and looks; the NPC in earshot they face (else the nearest) hears them.

        Coming within earshot of an NPC cues its greeting, leaving it its farewell (once per visit).
        """
        self.listener = position
        best, best_score = None, math.inf
        with self._lock:
            links = list(self._links.values())
        for link in links:
            dx, dy = link.position[0] - position[0], link.position[1] - position[1]
            dist = math.hypot(dx, dy)
            self._track_earshot(link, dist)
            if dist > link.radius * EARSHOT or not link.session.opened:
                continue
            score = dist
            link.facing = None
            if facing is not None and dist > 1e-6:
                norm = math.hypot(*facing) or 1.0
                cos = (dx * facing[0] + dy * facing[1]) / (dist * norm)
                score = dist * (1.5 - 0.5 * cos)  # facing someone counts as being a third closer
                link.facing = cos > FACING_COS
            if score < best_score:
                best, best_score = link.npc_id, score
        self.addressee = best
        return best

    def _track_earshot(self, link: NpcLink, dist: float) -> None:
        """Cue the NPC when the player comes within earshot or leaves it; never blocks."""
        if not link.in_earshot and dist <= link.radius * EARSHOT and link.session.opened:
            link.in_earshot = True
            link.session.cue("greeting")
        elif link.in_earshot and dist > link.radius * LEAVE_EARSHOT:
            link.in_earshot = False
            link.session.cue("farewell")
        else:
            return
        link.cued_until = time.monotonic() + CUE_GRACE_S

    def say(self, text: str) -> None:
        """Type-to-speak: synthesise ``text`` in the player's voice and stream it as microphone audio."""

        def run() -> None:
            audio = Synthesizer().synthesize(text, self.player_voice).audio
            self.typed.say((audio.astype(np.float32) * TYPED_GAIN).astype(np.int16))

        self._synth.submit(run)

    def close(self) -> None:
        """Stop audio and close every session (the sidecar itself is the caller's)."""
        self._stop.set()
        self._thread.join(2.0)
        try:
            self.device.stop()
        except Exception as exc:  # noqa: BLE001 - a device that fails to stop must not block exit
            log.warning("audio device did not stop cleanly: %s", exc)
        self._synth.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    def due_events(self) -> list[pygame.event.Event]:
        """Hub events not about one NPC (``VOICE_DEVICE``); ``NPCVoice.update`` posts them."""
        with self._lock:
            out, self._hub_events = self._hub_events, []
        return out

    # ------------------------------------------------------------------ I/O thread

    def _on_lost(self, reason: str) -> None:
        self._lost = reason  # the watchdog's thread: the I/O thread does the switch

    def _fall_back(self, reason: str) -> None:
        """The sound device stopped: carry on with type-to-speak on the wall-clock device, and say so."""
        self._lost = None
        lost = self.device
        self.device = ClockedDuplexDevice(self.mixer.pull)
        self.has_mic = False
        self.status = f"{reason}: type to speak (Enter); voices are silent"
        self.device.start()
        try:
            lost.stop()
        except Exception as exc:  # noqa: BLE001 - a dead device may not stop cleanly; the game goes on
            log.warning("lost audio device did not stop cleanly: %s", exc)
        log.warning("sound device lost: %s; falling back to type-to-speak", reason)
        event = pygame.event.Event(ge.VOICE_DEVICE, t=time.monotonic(), status=self.status, has_mic=False,
                                   reason=reason)
        with self._lock:
            self._hub_events.append(event)

    def _run(self) -> None:
        silence = np.zeros(CHUNK_SAMPLES, np.int16)
        while not self._stop.is_set():
            if self._lost is not None:
                self._fall_back(self._lost)
            try:
                chunk = self.device.chunks.get(timeout=0.01)
            except queue.Empty:
                chunk = None
            with self._lock:
                links = list(self._links.values())
            if chunk is not None:
                self._send(chunk, links, silence)
            now = time.monotonic()
            for link in links:
                if not link.ready_posted and link.session.opened:
                    link.ready_posted = True
                    link.post_at(now, pygame.event.Event(ge.NPC_READY, npc_id=link.npc_id, t=now))
                for reply in link.session.replies():
                    self._on_reply(link, reply, now)

    def _send(self, chunk: CapturedChunk, links: list[NpcLink], silence: np.ndarray) -> None:
        typed = self.typed.read(CHUNK_SAMPLES)
        pcm = chunk.pcm
        if typed.any():
            pcm = np.clip(pcm.astype(np.int32) + typed, -32768, 32767).astype(np.int16)
        self._track_voice(pcm, chunk.t_end)
        target = self.addressee
        now = time.monotonic()
        for link in links:
            # An NPC out of earshot that is not talking needs no steps: the sidecar's time goes to the others.
            far = math.dist(self.listener, link.position) > link.radius
            if not link.session.opened or (far and now > max(link.audible_until, link.cued_until)):
                continue
            state = link.take_state() or None
            if link.npc_id == target:
                # Without a microphone nothing the speaker plays can reach the "mic": no echo reference.
                played = chunk.played if self.has_mic else None
                attention = {"in_earshot": link.in_earshot} | ({} if link.facing is None else {"facing": link.facing})
                talking = (self.key_held or bool(typed.any())) if self.talk_mode == "push_to_talk" else None
                link.session.send_mic(pcm, played, state=state, t_capture=chunk.t_end, attention=attention,
                                      talking=talking)
            else:
                link.session.send_mic(silence, None, state=state, t_capture=chunk.t_end)

    def _track_voice(self, pcm: np.ndarray, t_end: float) -> None:
        frames = pcm[: len(pcm) // VOICE_FRAME * VOICE_FRAME].astype(np.float32).reshape(-1, VOICE_FRAME)
        rms = np.sqrt(np.mean(frames**2, axis=1)) + 1e-9
        db = 20 * np.log10(rms / 32768.0)
        self.mic_level_dbfs = max(FLOOR_DBFS, float(20 * np.log10(np.sqrt(np.mean(rms**2)) / 32768.0)))
        voiced = np.flatnonzero(db > VOICE_DBFS)
        if len(voiced):
            self.last_voice_end = t_end - (len(pcm) - (voiced[-1] + 1) * VOICE_FRAME) / SAMPLE_RATE

    def _on_reply(self, link: NpcLink, reply: Reply | ErrorReply, now: float) -> None:
        if isinstance(reply, ErrorReply):
            link.post_at(now, pygame.event.Event(ge.NPC_ERROR, npc_id=link.npc_id, t=now, code=reply.code,
                                                 message=reply.message))
            return
        timed = []
        for e in reply.events:
            if e.type == "interrupted" or (e.type == "held" and getattr(e, "held", False)):
                link.channel.buffer.flush()  # the NPC stops (or pauses) at once: drop what is queued to play
                with link.lock:
                    link.pending.clear()
                self._post(link, now, e)
            elif e.offset is None:
                self._post(link, now, e)
            else:
                timed.append(e)
        with link.lock:
            if timed:
                link.pending[reply.seq] = timed
            for seq in [s for s in link.pending if s < reply.seq - PENDING_KEEP]:
                del link.pending[seq]
        if reply.pcm.any():
            link.audible_until = now + 1.0
        link.channel.buffer.push(reply.pcm, now, tag=reply.seq)

    def _on_start(self, link: NpcLink, seq: int, t: float) -> None:
        """The first sample of reply ``seq`` plays at ``t`` (device thread, inside the buffer's lock)."""
        with link.lock:
            timed = link.pending.pop(seq, None)
        for e in timed or ():
            self._post(link, t, e)

    def _post(self, link: NpcLink, base: float, e: ev.Event) -> None:
        extra: dict[str, Any] = {}
        t = ge.effect_time(base, e)
        if e.type == "response" and self.last_voice_end > 0:
            extra["latency_ms"] = round(float(t - self.last_voice_end) * 1000.0, 1)
        link.post_at(t, ge.to_pygame(link.npc_id, base, e, **extra))
