"""The sessions of one engine worker: open, step and close them over one set of shared models.

An ``EngineHost`` is what every kind of engine worker runs (``transport/workers.py``): the sidecar's own
threads in the in-process mode, a worker process per core, or a Ray actor on any machine of a cluster.
It keeps no routing state: the front (``transport/server.py``) decides which session a request is for
(by its slot number), runs at most one request per session at a time, and says which overload level is
in force; the host applies that level to its models and runs the request in the calling thread.

It also measures how many sessions its worker can hold in real time (``measure_capacity``): one session
is played a short spoken exchange on the simulated clock at the last degrade level before the sidecar
refuses sessions, and the worker's CPU per chunk sets how many fit in a core's 200 ms.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from npc_voice import events as ev
from npc_voice.audio.format import CHUNK_SAMPLES, CHUNK_SECONDS
from npc_voice.engine.resources import EngineResources
from npc_voice.engine.session import Session
from npc_voice.engine.state import Attention
from npc_voice.transport import protocol as p

log = logging.getLogger(__name__)

# What is turned off, in order, when the deadline cannot be met (``server.DEGRADE_ORDER`` says why).
# Each name is a switch on the worker's shared models; level k turns off the first k of them.
DEGRADE_SWITCHES = ("predictive_reads", "learned_model", "accurate_pass")

# Of a core's time, the share a worker's sessions may use. At 4 sessions in one process (70 % of a core)
# no deadline was missed; at 8 (78 %) 3.8 % were (docs/perf/README.md, 2026-12-01): GIL hand-overs and
# the bursts of a turn's end need the rest.
UTILISATION = 0.7
CALIBRATION_CHUNKS = 30  # 6 s: a question, the NPC's answer starting over its echo
CALIBRATION_WARMUP = 5  # first steps pay one-off costs (allocator, kernels' first run): not counted
# the calibration's player: a voice unlike the NPCs' own (as the tests' player)
CALIBRATION_VOICE = {"voice": "en-us+f3", "pitch": 60, "rate": 160}


@dataclass(frozen=True)
class Capacity:
    """How many sessions a worker holds in real time, and what that came from."""

    sessions: int
    cost_ms: float | None  # CPU per session per 200 ms chunk at the last degrade level (None: configured)
    measured: bool


class EngineHost:
    """Sessions by slot number over one ``EngineResources``; thread-safe; runs each call in its caller's thread."""

    def __init__(self, resources: EngineResources) -> None:
        self.res = resources
        self._sessions: dict[int, Session] = {}
        self._notices: dict[int, list[ev.Notice]] = {}  # slot -> told with its session's next step reply
        self._actions: set[int] = set()  # slots whose client asked for ``action`` events
        self._lock = threading.Lock()
        self._level = 0

    @property
    def sessions(self) -> int:
        with self._lock:
            return len(self._sessions)

    def set_level(self, level: int) -> None:
        """Apply overload level ``level`` (0 = full service) to the shared models; cheap when unchanged."""
        if level == self._level:
            return
        self._level = level
        off = set(DEGRADE_SWITCHES[:level])
        self.res.predictive = "predictive_reads" not in off
        self.res.learned = "learned_model" not in off
        self.res.asr.accurate = "accurate_pass" not in off

    def open(self, slot: int, msg: p.OpenSession) -> p.Message:
        """Open a session for ``slot``: ``Opened``, or an ``Error`` saying why not."""
        try:
            session = Session(self.res, msg.persona, msg.npc_id, msg.state, simulated_clock=msg.clock == "simulated",
                              floor_events=msg.floor, policy=msg.policy, explain=msg.why, talk_mode=msg.talk_mode,
                              hold_events=msg.held, player=msg.player)
            fallback = self.res.voice_problem(msg.persona)
        except KeyError as exc:
            return p.Error(session=msg.session, code="unknown_persona", message=str(exc.args[0]))
        except ValueError as exc:  # PersonaError
            return p.Error(session=msg.session, code="bad_persona", message=str(exc))
        except Exception as exc:
            log.exception("opening session %s failed", msg.session)
            return p.Error(session=msg.session, code="internal", message=f"open failed: {exc}")
        with self._lock:
            old = self._sessions.pop(slot, None)
            self._sessions[slot] = session
            if msg.actions:
                self._actions.add(slot)
            else:
                self._actions.discard(slot)
            if fallback is not None:  # the NPC still talks, in its eSpeak NG voice: say why it sounds so
                self._notices[slot] = [ev.Notice(code="voice_fallback", message=fallback)]
        if old is not None:  # a slot is never reused by the front; a reopen after a lost reply is the only way
            old.close()
        return p.Opened(session=msg.session, persona=msg.persona, npc_id=msg.npc_id)

    def step(self, slot: int, msg: p.MicChunk, lost: int = 0) -> p.Message:
        """One 200 ms step of the slot's session: a ``StepReply``, or an ``Error``."""
        with self._lock:
            session = self._sessions.get(slot)
            notices = self._notices.pop(slot, [])
            actions = slot in self._actions
        if session is None:
            return p.Error(session=msg.session, code="no_session", seq=msg.seq,
                           message=f"session {msg.session!r} is not open on this engine worker")
        try:
            result = session.step(msg.pcm, msg.played, msg.state, cue=msg.cue,
                                  attention=Attention(**msg.attention) if msg.attention else None,
                                  talking=msg.talking)
            return p.StepReply(
                session=msg.session,
                seq=msg.seq,
                pcm=result.pcm,
                events=[e.to_wire() for e in [*notices, *result.events]
                        if actions or not isinstance(e, ev.GameAction)],
                compute_ms=round(result.compute_ms, 3),
                lost=lost,
            )
        except Exception as exc:
            log.exception("step failed for session %s", msg.session)
            return p.Error(session=msg.session, code="internal", message=f"step failed: {exc}", seq=msg.seq)

    def close(self, slot: int) -> None:
        with self._lock:
            session = self._sessions.pop(slot, None)
            self._notices.pop(slot, None)
            self._actions.discard(slot)
        if session is not None:
            session.close()

    def reset(self) -> None:
        """Close every session (the front gave them up: they were reopened elsewhere)."""
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
            self._notices.clear()
            self._actions.clear()
        for session in sessions:
            session.close()

    def preload_personas(self) -> None:
        """Load every persona on the search path now (in the background, once the worker serves): a session
        reopened here after its worker was lost must not wait a second for its persona's language model and
        topics."""
        for persona_id in self.res.personas.known():
            try:
                self.res.persona(persona_id)
            except (KeyError, ValueError, OSError) as exc:
                log.warning("persona %s not preloaded: %s", persona_id, exc)

    # ------------------------------------------------------------------ capacity

    def measure_capacity(self, share: float = 1.0, persona_id: str | None = None) -> Capacity:
        """Sessions this worker holds in real time on ``share`` of a core (1.0: a core of its own).

        One session hears a spoken question and starts its answer over its own echo, on the simulated clock,
        at the last degrade level before new sessions are refused (the most sessions a worker can serve,
        which is what the front enforces); the process's CPU time per chunk, after a warm-up, is the cost.
        CPU time, not wall time, so a busy machine does not shrink the figure. Takes about half a second.
        """
        persona_id = persona_id or self._calibration_persona()
        question = self._calibration_question(persona_id)
        level = self._level
        self.set_level(len(DEGRADE_SWITCHES))
        session = Session(self.res, persona_id, "capacity-probe", simulated_clock=True)
        try:
            played = np.zeros(CHUNK_SAMPLES, np.int16)
            cpu0 = 0.0
            for k, mic in enumerate(question):
                if k == CALIBRATION_WARMUP:
                    cpu0 = time.process_time()
                echo = np.clip(mic.astype(np.int32) + played.astype(np.int32) * 3 // 10, -32768, 32767)
                played = session.step(echo.astype(np.int16), played).pcm
            cost_ms = 1000 * (time.process_time() - cpu0) / (len(question) - CALIBRATION_WARMUP)
        finally:
            session.close()
            self.set_level(level)
        sessions = max(1, math.floor(UTILISATION * share * CHUNK_SECONDS * 1000 / max(cost_ms, 0.1)))
        return Capacity(sessions=sessions, cost_ms=round(cost_ms, 2), measured=True)

    def _calibration_persona(self) -> str:
        ids = self.res.personas.known()
        if not ids:
            folders = ", ".join(str(f) for f in self.res.personas.folders)
            raise FileNotFoundError(f"no persona files in {folders} to measure the capacity with")
        return "blacksmith" if "blacksmith" in ids else ids[0]

    def _calibration_question(self, persona_id: str) -> np.ndarray:
        """``CALIBRATION_CHUNKS`` microphone chunks: a pause, one of the persona's example questions, quiet."""
        from npc_voice.speech.tts import VoiceSettings

        examples = self.res.persona(persona_id).persona.example_utterances()
        text = examples[0] if examples else "Hello there. What do you do here?"
        audio = self.res.tts.synthesize(text, VoiceSettings(**CALIBRATION_VOICE)).audio
        audio = (audio.astype(np.float32) * 0.5).astype(np.int16)
        total = CALIBRATION_CHUNKS * CHUNK_SAMPLES
        full = np.zeros(total, np.int16)
        speech = audio[: total - CHUNK_SAMPLES]
        full[CHUNK_SAMPLES: CHUNK_SAMPLES + len(speech)] = speech
        return full.reshape(-1, CHUNK_SAMPLES)


def process_rss_mb(pid: int | None = None) -> float:
    """Resident memory of a process (this one by default) in MB, from ``/proc``."""
    with open(f"/proc/{pid or os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0
