"""Rendered lines on disk: audio with its word and viseme timing, keyed by text + voice + emotion settings.

One small file per line in a folder a designer can delete at any time (``npc-voice persona cache
--clear``, or just remove it): a missing or damaged file only means the line is rendered again. The
default folder is the user's cache folder (``$XDG_CACHE_HOME/npc-voice/lines``, else
``~/.cache/npc-voice/lines``); ``$NPC_VOICE_CACHE`` or ``npc-voice serve --voice-cache DIR`` moves it.

A file is a 4-byte header length, a JSON header (text, words, visemes) and the raw 16 kHz int16 audio,
written to a temporary name and renamed into place, so a reader never sees half a file, and several
sidecar processes may render into one folder. Reading one back is a file read and a JSON parse: well
under a millisecond (``npc-voice bench voice``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from npc_voice.speech.tts import Utterance, VoiceSettings

log = logging.getLogger(__name__)
CACHE_ENV = "NPC_VOICE_CACHE"
FORMAT = 3  # bump when rendering changes in a way the key does not capture: old files are then ignored
# (3: words as written, with their punctuation; 2's were stripped)
_MAGIC = b"NPCV"
_SUFFIX = ".line"


def default_cache_dir() -> Path:
    """``$NPC_VOICE_CACHE``, else the user's cache folder + ``npc-voice/lines``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "npc-voice" / "lines"


def line_key(text: str, settings: VoiceSettings, engine: str) -> str:
    """The cache key of ``text`` in ``settings`` as rendered by ``engine`` (the voice model's identity)."""
    blob = json.dumps({"format": FORMAT, "text": text, "settings": asdict(settings), "engine": engine},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class LineCache:
    """A folder of rendered lines; safe to share between threads and processes."""

    def __init__(self, folder: Path | str | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_dir()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}{_SUFFIX}"

    def has(self, key: str) -> bool:
        return self._path(key).is_file()

    def get(self, key: str) -> Utterance | None:
        """The rendered line, or None if it is not here (or its file is damaged: it is rendered again)."""
        try:
            with open(self._path(key), "rb") as f:
                raw = f.read()
        except OSError:
            return None
        try:
            if raw[:4] != _MAGIC:
                raise ValueError("not a line file")
            (size,) = struct.unpack_from("<I", raw, 4)
            head = json.loads(raw[8 : 8 + size])
            audio = np.frombuffer(raw, dtype=np.int16, offset=8 + size)
            return Utterance(text=head["text"], audio=audio,
                             words=[(t, w) for t, w in head["words"]],
                             visemes=[(t, v) for t, v in head["visemes"]])
        except (ValueError, KeyError, struct.error) as exc:
            log.warning("voice cache: %s is damaged (%s); the line will be rendered again", self._path(key), exc)
            return None

    def put(self, key: str, utterance: Utterance) -> None:
        """Store a rendered line (atomically: a reader sees the whole file or none)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        head = json.dumps({"text": utterance.text, "words": utterance.words, "visemes": utterance.visemes},
                          ensure_ascii=False).encode("utf-8")
        pcm = np.ascontiguousarray(utterance.audio, dtype=np.int16).tobytes()
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + struct.pack("<I", len(head)) + head + pcm)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def remove(self, key: str) -> bool:
        """Delete one rendered line; True if it was there."""
        try:
            self._path(key).unlink()
            return True
        except OSError:
            return False

    def size(self) -> tuple[int, int]:
        """``(files, bytes)`` held now."""
        files = total = 0
        if self.folder.is_dir():
            for p in self.folder.glob(f"*/*{_SUFFIX}"):
                files += 1
                total += p.stat().st_size
        return files, total

    def clear(self) -> int:
        """Delete every rendered line; returns how many there were."""
        files = 0
        if self.folder.is_dir():  # only our files: the folder may be one the user pointed at by mistake
            for p in self.folder.glob(f"*/*{_SUFFIX}"):
                p.unlink(missing_ok=True)
                files += 1
            for sub in self.folder.iterdir():
                if sub.is_dir() and len(sub.name) == 2:
                    with contextlib.suppress(OSError):
                        sub.rmdir()  # empty now, unless something else lives there
        return files
