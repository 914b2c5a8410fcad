"""Where the package's own files are: trained weights, the default personas, the user's persona folders.

The trained weights (``models/`` in the repository) and the default personas (``assets/``) are package
data: the packages ``npc_voice.models`` and ``npc_voice.assets`` (pyproject maps the repository's
top-level folders onto them). They are found through ``importlib.resources``, so a wheel installed into a
game's environment, an editable install and a checkout all find the same files, and nothing depends on
where the repository is or what the working directory is.

Persona folders: the folders given on the command line (``--personas``) or to ``EngineResources``, then
those in ``$NPC_VOICE_PERSONAS`` (``os.pathsep``-separated), then the built-in ones; a persona id is
looked up in that order, so a game's ``blacksmith.yaml`` replaces the built-in smith.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

PERSONAS_ENV = "NPC_VOICE_PERSONAS"

_extracted = contextlib.ExitStack()  # only for a zipped install: files extracted once, removed at exit
atexit.register(_extracted.close)


def _package_folder(package: str, *parts: str) -> Path:
    root = resources.files(package)
    for part in parts:
        root = root / part
    if isinstance(root, Path):  # installed as files (wheels always are): use them in place
        return root
    return _extracted.enter_context(resources.as_file(root))


def model_dir(name: str) -> Path:
    """The folder of one trained model (``duplex``, ``emotion``, ``endpoint``) inside the package."""
    return _package_folder("npc_voice.models", name)


def builtin_persona_dir() -> Path:
    """The default personas shipped with the package (the demo village's blacksmith, herbalist, guard)."""
    return _package_folder("npc_voice.assets", "personas")


PersonaFolders = str | Path | Iterable[str | Path] | None


def persona_dirs(folders: PersonaFolders = None, env: dict[str, str] | None = None) -> list[Path]:
    """The persona search path: ``folders`` first, then ``$NPC_VOICE_PERSONAS``, then the built-in folder."""
    if folders is None:
        given: list[Path] = []
    elif isinstance(folders, str | Path):
        given = [Path(folders)]
    else:
        given = [Path(f) for f in folders]
    environ = os.environ if env is None else env
    from_env = [Path(p) for p in environ.get(PERSONAS_ENV, "").split(os.pathsep) if p.strip()]
    out: list[Path] = []
    for folder in [*given, *from_env, builtin_persona_dir()]:
        if folder not in out:
            out.append(folder)
    return out


SHARED_ENV = "NPC_VOICE_SHARED"


def shared_eval_dir() -> Path:
    """The project's yardsticks for benches and training (not package data): ``$NPC_VOICE_SHARED/eval``,
    else ``../shared/eval`` from the working directory (the repository's root, as every documented command
    runs)."""
    return Path(os.environ.get(SHARED_ENV, "../shared")) / "eval"
