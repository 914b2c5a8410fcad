"""The render process's entry points (``npc_voice.speech.ahead.RenderAhead.submit``).

Light to import on purpose: the process drops to the lowest CPU priority in ``init`` before it loads
anything heavy, so torch, Piper and Praat are loaded by the first job at idle priority, never at the
sidecar's own priority beside its conversations.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import Any

_STOP: Any = None  # set by the sidecar's close: a pass under way stops at its next sentence
_PARENT = 0  # the sidecar's pid: a render process whose sidecar died (kill -9) stops too
_VOICES: dict[str, Any] = {}


def init(stop: Any) -> None:
    """Run only on CPU time nothing else wants (Linux: the idle scheduling class; else nice 19)."""
    global _STOP, _PARENT
    _STOP, _PARENT = stop, os.getppid()
    # Ctrl-C reaches the whole process group: the sidecar stops this process itself (the stop event, the
    # watchdog), where a KeyboardInterrupt here would end a pass mid-sentence and be logged as a failed render.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(AttributeError, OSError):
        os.nice(19)
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    # A worker waiting for its next job never sees its sidecar die (it holds its own queue's write end too),
    # so a watchdog ends it when the sidecar is gone (kill -9), instead of leaving it orphaned.
    threading.Thread(target=_watch_parent, name="npc-render-watchdog", daemon=True).start()


def _watch_parent() -> None:
    while os.getppid() == _PARENT:
        time.sleep(1.0)
    os._exit(0)


def render(persona: Any, folder: str) -> Any:
    """Render ``persona``'s missing lines into the cache ``folder``; a ``RenderReport``."""
    from npc_voice.speech.ahead import render_lines
    from npc_voice.speech.cache import LineCache
    from npc_voice.speech.voices import Voices

    voices = _VOICES.get(folder)
    if voices is None:
        voices = _VOICES[folder] = Voices(LineCache(folder))
    return render_lines(voices, persona, stop=lambda: _STOP.is_set() or os.getppid() != _PARENT)
