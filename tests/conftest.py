"""Shared fixtures: one real sidecar (models loaded once) for every test that needs it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
# Lines rendered ahead go to a cache of the checkout's own (kept between runs, ignored by git), never the
# user's: a test run must not fill or clear a player's cache.
os.environ.setdefault("NPC_VOICE_CACHE", os.path.join(os.path.dirname(os.path.dirname(__file__)), ".cache",
                                                      "test-voice-lines"))


@pytest.fixture(scope="session")
def resources():
    """The engine's shared models, loaded once for the whole test run."""
    import torch

    from npc_voice.engine.resources import EngineResources

    torch.set_num_threads(1)
    res = EngineResources()
    # The demo blacksmith's resting voice rendered ahead, as on any machine that has run the game once (a few
    # seconds when the test cache is cold, then kept in .cache/). Its other voice levels go on rendering in the
    # background, as in the game: a simulated-clock step waits for a sentence that is still being synthesised
    # (engine/speaker.py), so a line not rendered yet costs time, never a gap. Loading the persona has started the
    # render process on it; this pass goes backwards and meets it in the middle (two cores).
    res.ahead.render(res.persona("blacksmith").persona, levels=1, backwards=True)
    yield res
    res.close()


@pytest.fixture(scope="session")
def sidecar(resources, tmp_path_factory) -> Iterator[str]:
    """A real sidecar serving on a private ipc:// address in this process; yields the address."""
    from npc_voice.transport.server import Sidecar

    path = tmp_path_factory.mktemp("sidecar") / f"{uuid.uuid4().hex[:8]}.sock"
    with Sidecar(resources, f"ipc://{path}").running(30) as address:
        yield address
