"""Every NPC's voice behind one call: ``Voices.synthesize(text, VoiceSettings) -> Utterance``.

The settings name the engine: eSpeak NG (``espeak-ng``) or a neural Piper voice (``piper`` + a model
name). A line rendered ahead (``npc_voice.speech.ahead``) comes from the on-disk cache, so an answer's
first audio costs a file read; anything else (the player's words echoed, a number) is synthesised
there and then. A Piper voice that is not installed falls back to the settings' eSpeak voice, said
once in the log (and by ``persona check``), so a game with a missing voice file still talks.
"""

from __future__ import annotations

import logging
import threading

import espeakng_loader

from npc_voice.speech.cache import LineCache, line_key
from npc_voice.speech.piper import PiperSynthesizer, VoiceMissing, load_model, voice_identity
from npc_voice.speech.tts import Synthesizer, Utterance, VoiceSettings

log = logging.getLogger(__name__)


def _espeak_identity() -> str:
    path = espeakng_loader.get_library_path()
    return f"espeak-ng:{getattr(espeakng_loader, '__version__', '')}:{path}"


class Voices:
    """Text to speech for every NPC of the process, in the engine each one's settings name."""

    def __init__(self, cache: LineCache | None = None) -> None:
        self.cache = cache if cache is not None else LineCache()
        self.espeak = Synthesizer()
        self.piper = PiperSynthesizer()
        self._espeak_id = _espeak_identity()
        self._identities: dict[str, str | None] = {}  # model name -> identity, None when missing
        self._lock = threading.Lock()
        self.missing: dict[str, str] = {}  # model name -> why it is missing (logged once)

    def engine_of(self, settings: VoiceSettings) -> str:
        """What will really speak these settings: the Piper model's identity, or eSpeak NG's."""
        if settings.engine != "piper":
            return self._espeak_id
        with self._lock:
            if settings.model not in self._identities:
                try:
                    self._identities[settings.model] = voice_identity(settings.model)
                except VoiceMissing as exc:
                    self._identities[settings.model] = None
                    self.missing[settings.model] = str(exc)
                    log.warning("%s; NPCs with this voice speak with eSpeak NG voice '%s' instead",
                                exc, settings.voice)
            identity = self._identities[settings.model]
        return identity if identity is not None else self._espeak_id

    def warm(self, settings: VoiceSettings) -> None:
        """Load what these settings speak with (a Piper model takes a few seconds), so a live line need not."""
        if settings.engine == "piper" and self.engine_of(settings) != self._espeak_id:
            load_model(settings.model)

    def key(self, text: str, settings: VoiceSettings) -> str:
        """The cache key of ``text`` in ``settings``."""
        return line_key(text, settings, self.engine_of(settings))

    def synthesize(self, text: str, voice: VoiceSettings | None = None) -> Utterance:
        """``text`` in ``voice``: from the cache if it was rendered ahead, else synthesised now."""
        settings = voice or VoiceSettings()
        cached = self.cache.get(self.key(text, settings))
        return cached if cached is not None else self.render(text, settings)

    def render(self, text: str, settings: VoiceSettings) -> Utterance:
        """Synthesise now, without the cache."""
        if settings.engine == "piper" and self.engine_of(settings) != self._espeak_id:
            audio, words, visemes = self.piper.synthesize(text, settings)
            return Utterance(text=text, audio=audio, words=words, visemes=visemes)
        return self.espeak.synthesize(text, settings.as_espeak())

    def render_into_cache(self, text: str, settings: VoiceSettings) -> bool:
        """Render ``text`` into the cache unless it is there; True if it was rendered."""
        key = self.key(text, settings)
        if self.cache.has(key):
            return False
        self.cache.put(key, self.render(text, settings))
        return True
