"""Everything heavy, loaded once per sidecar process and shared by every session.

Personas are cached with their derived artefacts (topic embeddings, speech-recognition language
model) and rebuilt when their file changes, so a designer's edit is picked up from the next turn.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from npc_voice.data import PersonaFolders, persona_dirs
from npc_voice.features.asr import DEFAULT_RECOGNISER, AsrModels, persona_prompt
from npc_voice.features.embed import Embedder
from npc_voice.features.lm import PersonaLM, build_persona_lm
from npc_voice.features.speaker import SpeakerEncoder
from npc_voice.features.vad import shared_session
from npc_voice.memory.store import MemoryStore
from npc_voice.model.clarity import Clarity
from npc_voice.model.topics import TopicMatcher
from npc_voice.persona.loader import Persona, PersonaStore, load_persona
from npc_voice.priority import background_thread
from npc_voice.speech.ahead import RenderAhead
from npc_voice.speech.cache import LineCache
from npc_voice.speech.voices import Voices

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class LoadLevel:
    """What the sidecar's overload control leaves on, read once at the start of a step so every stage of the
    step sees the same (the control thread may change it meanwhile)."""

    predictive: bool = True  # reads while the player talks, on idle readers
    learned: bool = True  # the duplex model while the NPC listens
    accurate: bool = True  # the Whisper reads


@dataclass(frozen=True)
class PersonaProblem:
    """A broken edit of a persona file that loaded before: the last good version stays in use."""

    mtime: float | None  # the broken file's mtime (None: the file is gone, or broken in a fresh process)
    message: str


@dataclass(frozen=True)
class LoadedPersona:
    """A persona with what the engine derives from it."""

    persona: Persona
    matcher: TopicMatcher
    lm: PersonaLM
    mtime: float
    prompt: str  # Whisper's vocabulary hint for this persona's topics (``persona_prompt``)


class EngineResources:
    """Shared models: embeddings, VAD, ASR, TTS; a small worker pool for look-ahead reading and one voice
    thread for synthesis ahead (eSpeak NG runs one sentence at a time anyway), so a line's next sentence
    never queues behind a transcription.

    Reads are of two kinds: those an answer or a floor decision waits for, and predictive ones made
    while the player is still talking. A predictive read only ever takes a reading thread that would
    otherwise idle (``read_ahead``), so it never queues ahead of a read someone waits for;
    ``predictive`` is turned off by the sidecar first when it falls behind."""

    def __init__(self, persona_dir: PersonaFolders = None, workers: int = 2,
                 voice_cache: Path | str | None = None, recogniser: str = DEFAULT_RECOGNISER,
                 memory: MemoryStore | None = None, render_ahead: bool = True) -> None:
        """``recogniser``: the accurate recogniser, one of ``features.asr.RECOGNISERS``. ``memory``: where sessions
        that name their player remember them (None: only within a session). ``render_ahead=False``: this process
        only reads the voice cache, another one fills it (the sidecar's other engine worker processes on the same
        machine: one render process is enough for all)."""
        # The user's persona folders (and $NPC_VOICE_PERSONAS) first, then the built-in personas.
        self.personas = PersonaStore(persona_dirs(persona_dir))
        self.memory = memory
        self.embedder = Embedder.shared()
        shared_session()  # load the VAD model now rather than in the first session's first step
        self.asr = AsrModels(recogniser=recogniser)
        self.clarity = Clarity.load(recogniser)  # P(heard right) of its reads; None: the floor waits as before
        # Every NPC's voice (eSpeak NG or Piper), with each persona's lines rendered ahead into the voice
        # cache (``voice_cache``, default the user's cache folder) when it loads and after each edit.
        self.tts = Voices(LineCache(voice_cache))
        self.ahead = RenderAhead(self.tts)
        self.render_ahead = render_ahead
        self._warm_voices()
        self.workers = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="npc-lookahead",
                                          initializer=background_thread)
        self._readers = workers
        self._reads = 0  # reads queued or running
        self._reads_lock = threading.Lock()
        self.predictive = True
        self.learned = True  # the duplex model runs in the sessions' steps (off under overload)
        self.voices = ThreadPoolExecutor(max_workers=1, thread_name_prefix="npc-voice-ahead")  # the line being said
        # Who speaks: the player's voice profile and each turn's speaker embedding (~0.1 s), on their own thread.
        self.speaker = SpeakerEncoder.shared()
        self.listeners = ThreadPoolExecutor(max_workers=1, thread_name_prefix="npc-speaker",
                                            initializer=background_thread)
        self._lock = threading.Lock()
        self._loaded: dict[str, LoadedPersona] = {}
        self._broken: dict[str, PersonaProblem] = {}  # persona id -> its broken edit
        self._reloading: set[str] = set()
        self._loading: dict[str, threading.Lock] = {}  # one load of a persona at a time
        # Rebuilding a persona (topic embeddings, language model) takes from 0.1 s to several seconds:
        # never in a step. One thread, so two edits in a row rebuild one after the other.
        self._reloader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="npc-persona-reload",
                                             initializer=background_thread)

    def load_level(self) -> LoadLevel:
        return LoadLevel(predictive=self.predictive, learned=self.learned, accurate=self.asr.accurate)

    @property
    def readers(self) -> int:
        """Reading threads."""
        return self._readers

    @property
    def reads_in_flight(self) -> int:
        """Reads queued or running."""
        with self._reads_lock:
            return self._reads

    def _warm_voices(self) -> None:
        """Load the Piper voices the personas on the search path speak with now (~3 s each, once), not at an NPC's
        first live line: loading holds the interpreter lock for a while, which a step must never wait on."""
        for persona_id in self.personas.known():
            try:
                settings = load_persona(self.personas.path_for(persona_id)).voice.settings()
            except (KeyError, ValueError):  # a broken persona says so when it is opened
                continue
            self.tts.warm(settings)

    def read(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run a read someone will wait for on the reading threads (queued if they are busy)."""
        with self._reads_lock:
            self._reads += 1
        return self._submit_read(fn, *args)

    def read_ahead(self, fn: Callable[..., T], *args: Any) -> Future[T] | None:
        """Run a predictive read only if a reading thread is idle and reading ahead is on; else ``None``."""
        with self._reads_lock:
            if not self.predictive or self._reads >= self._readers:
                return None
            self._reads += 1
        return self._submit_read(fn, *args)

    def _submit_read(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        fut = self.workers.submit(fn, *args)
        fut.add_done_callback(self._read_done)  # also called when the read is cancelled
        return fut

    def _read_done(self, _: Future[Any]) -> None:
        with self._reads_lock:
            self._reads -= 1

    def persona(self, persona_id: str) -> LoadedPersona:
        """The persona, reloaded if its file changed; raises ``KeyError``/``PersonaError``.

        A broken edit of a persona that loaded before keeps the last good version (and is parsed
        once, not at every step); ``persona_problem`` says what is wrong with it.
        """
        path, mtime, cached, fresh = self._lookup(persona_id)
        if fresh:
            return cached
        with self._lock:
            loading = self._loading.setdefault(persona_id, threading.Lock())
        with loading:  # sessions opening at once: the first builds, the others get its result
            path, mtime, cached, fresh = self._lookup(persona_id)
            return cached if fresh else self._load(persona_id, path, mtime, cached)

    def _load(self, persona_id: str, path: Path, mtime: float, cached: LoadedPersona | None) -> LoadedPersona:
        try:
            persona = self.personas.load(persona_id)
        except ValueError as exc:  # PersonaError
            if cached is None:
                raise
            with self._lock:
                self._broken[persona_id] = PersonaProblem(mtime, getattr(exc, "first", str(exc)))
            log.error("persona %s: the edit is broken, keeping the last good version:\n%s", persona_id, exc)
            return cached
        lm = build_persona_lm(persona.source)
        loaded = LoadedPersona(
            persona=persona, matcher=TopicMatcher(persona, self.embedder), lm=lm, mtime=mtime,
            prompt=persona_prompt(lm, persona.name),
        )
        with self._lock:
            self._loaded[persona_id] = loaded
            self._broken.pop(persona_id, None)
        log.info("persona %s loaded from %s (%d topics)", persona_id, path, len(persona.topics))
        if self.render_ahead:  # only lines not on disk yet are rendered: after an edit, the changed ones
            self.ahead.submit(persona)
        return loaded

    def current(self, persona_id: str) -> LoadedPersona:
        """The loaded version, without waiting: a changed file is rebuilt in the background and is
        returned from the first call after it is ready. Loads (and waits) only if never loaded."""
        _, _, cached, fresh = self._lookup(persona_id)
        if cached is None:
            return self.persona(persona_id)
        if not fresh:
            with self._lock:
                start = persona_id not in self._reloading
                self._reloading.add(persona_id)
            if start:
                self._reloader.submit(self._reload, persona_id)
        return cached

    def _lookup(self, persona_id: str) -> tuple[Path, float, LoadedPersona | None, bool]:
        """The file, its mtime, the loaded version and whether that version is up to date with the file
        (a broken edit already reported counts as up to date: the good version stays)."""
        path = self.personas.path_for(persona_id)
        mtime = path.stat().st_mtime
        with self._lock:
            cached = self._loaded.get(persona_id)
            broken = self._broken.get(persona_id)
        fresh = cached is not None and (cached.mtime == mtime or (broken is not None and broken.mtime == mtime))
        return path, mtime, cached, fresh

    def _reload(self, persona_id: str) -> None:
        try:
            self.persona(persona_id)
        except (KeyError, OSError) as exc:
            log.error("persona %s: cannot reload: %s", persona_id, exc)
        finally:
            with self._lock:
                self._reloading.discard(persona_id)

    def persona_problem(self, persona_id: str) -> PersonaProblem | None:
        """The file's current edit, if it is broken and an older version is in use."""
        with self._lock:
            return self._broken.get(persona_id)

    def voice_problem(self, persona_id: str) -> str | None:
        """Why the persona speaks with its eSpeak NG fallback instead of its Piper voice, or None if it does not."""
        voice = self.current(persona_id).persona.voice
        if voice.engine != "piper" or not self.tts.engine_of(voice.settings()).startswith("espeak"):
            return None
        return f"{persona_id}: {self.tts.missing.get(voice.model, 'Piper voice missing')}; speaking with eSpeak NG " \
               f"voice '{voice.voice}' instead"

    def close(self) -> None:
        self.ahead.close()
        self.workers.shutdown(wait=False, cancel_futures=True)
        self.voices.shutdown(wait=False, cancel_futures=True)
        self.listeners.shutdown(wait=False, cancel_futures=True)
        self._reloader.shutdown(wait=False, cancel_futures=True)
        self.asr.close()
        if self.memory is not None:
            self.memory.close()
