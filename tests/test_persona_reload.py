"""Live reload through a real Session: a good edit is used from the next turn, a broken one keeps the
last good version, and the game hears about each change once (``notice`` events)."""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from npc_voice import events as ev
from npc_voice.audio.format import silence
from npc_voice.data import builtin_persona_dir

ASSETS = builtin_persona_dir()
OLD = "A fine longsword, {sword_price}. Balanced it myself."
NEW = "Take this longsword, {sword_price}, finest in the valley."


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("personas")
    shutil.copy(ASSETS / "blacksmith.yaml", path / "blacksmith.yaml")
    return path


@pytest.fixture(scope="module")
def res(folder: Path) -> Iterator[object]:
    import torch

    from npc_voice.engine.resources import EngineResources

    torch.set_num_threads(1)
    resources = EngineResources(persona_dir=folder)
    yield resources
    resources.close()


def edit(path: Path, text: str, bump: float) -> None:
    """Write the file and move its mtime on, as an editor's save does (never within one tick)."""
    path.write_text(text, encoding="utf-8")
    st = path.stat()
    os.utime(path, (st.st_atime, st.st_mtime + bump))


def notices(session: object, steps: int = 2, wait_s: float = 0.0) -> list[ev.Notice]:
    """Notices from stepping: first until one arrives (the rebuild runs in the background, up to
    ``wait_s``), then ``steps`` more steps, which must add no repeats."""
    out: list[ev.Notice] = []
    deadline = time.monotonic() + wait_s
    while not out and time.monotonic() < deadline:
        out += [e for e in session.step(silence(), None).events if isinstance(e, ev.Notice)]
        time.sleep(0.02)
    for _ in range(steps):
        out += [e for e in session.step(silence(), None).events if isinstance(e, ev.Notice)]
    return out


def sword_lines(session: object) -> set[str]:
    persona = session.loaded.persona
    return {persona.choose_line("buy_sword", {}, random.Random(i)).text for i in range(30)}


def test_good_then_broken_then_fixed_edit(res: object, folder: Path) -> None:
    from npc_voice.engine.session import Session

    path = folder / "blacksmith.yaml"
    original = path.read_text(encoding="utf-8")
    session = Session(res, "blacksmith", "npc-reload", seed=1)
    assert notices(session) == []
    assert "A fine longsword, forty gold. Balanced it myself." in sword_lines(session)

    edit(path, original.replace(OLD, NEW), bump=10)
    got = notices(session, wait_s=30)
    assert [n.code for n in got] == ["persona_reloaded"]
    assert "Take this longsword, forty gold, finest in the valley." in sword_lines(session)
    assert "A fine longsword, forty gold. Balanced it myself." not in sword_lines(session)

    broken = original.replace(OLD, NEW).replace(
        "    examples:\n      - I'd like to buy a sword.", "    exampels:\n      - I'd like to buy a sword."
    )
    edit(path, broken, bump=20)
    got = notices(session, steps=3, wait_s=30)
    assert [n.code for n in got] == ["persona_error"]  # once per change, not at every step
    line = broken[: broken.index("    exampels:")].count("\n") + 1
    assert got[0].message.startswith(f"{path}:{line}: unknown key 'exampels' in topic 'buy_sword'")
    assert "did you mean 'examples'?" in got[0].message
    assert "Take this longsword, forty gold, finest in the valley." in sword_lines(session)  # last good version
    assert session.loaded.persona.topics["buy_sword"].examples  # the matcher still knows the topic

    other = Session(res, "blacksmith", "npc-second", seed=2)  # a session opened meanwhile gets the good one too
    assert "Take this longsword, forty gold, finest in the valley." in sword_lines(other)

    edit(path, original, bump=30)
    assert [n.code for n in notices(session, wait_s=30)] == ["persona_reloaded"]
    assert "A fine longsword, forty gold. Balanced it myself." in sword_lines(session)
    session.close()
    other.close()


def test_sessions_opening_at_once_build_the_persona_once(res: object, folder: Path, monkeypatch) -> None:
    """Several NPCs of one persona open together (a game's scene loads): the first builds its language model,
    the others wait for that one instead of building it again side by side (and racing on the cache files)."""
    import threading

    from npc_voice.engine import resources

    built: list[str] = []
    real_build = resources.build_persona_lm

    def slow_build(source: object) -> object:
        built.append(threading.current_thread().name)
        time.sleep(0.3)  # long enough for every other opener to arrive meanwhile
        return real_build(source)

    monkeypatch.setattr(resources, "build_persona_lm", slow_build)
    path = folder / "blacksmith.yaml"
    edit(path, path.read_text(encoding="utf-8"), bump=40)
    start = threading.Barrier(3)
    got: list[object] = []

    def open_persona() -> None:
        start.wait()
        got.append(res.persona("blacksmith"))

    threads = [threading.Thread(target=open_persona) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1
    assert len(got) == 3 and got[0] is got[1] is got[2]


def test_a_persona_whose_piper_voice_is_missing_speaks_espeak_and_the_game_is_told(res, folder: Path) -> None:
    text = (ASSETS / "blacksmith.yaml").read_text(encoding="utf-8")
    (folder / "smith_b.yaml").write_text(
        text.replace("id: blacksmith", "id: smith_b").replace("model: en_US-joe-medium", "model: en_US-nobody-low"),
        encoding="utf-8")
    assert res.voice_problem("blacksmith") is None
    problem = res.voice_problem("smith_b")
    assert problem is not None and "'en_US-nobody-low' is not installed" in problem
    assert "eSpeak NG voice 'en-us+m3' instead" in problem
    voice = res.persona("smith_b").persona.voice
    assert res.tts.synthesize("Mind the sparks.", voice.settings()).duration > 0.5
