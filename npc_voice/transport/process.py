"""Start and stop a sidecar as its own process (the game, the bench and ``talk`` all do this)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from npc_voice.data import PersonaFolders

WORKER_LINE = "npc-voice worker "  # what the sidecar prints when an engine worker comes up or is lost


class SidecarProcess:
    """A sidecar started as its own process on a private ipc:// address, stopped on exit.

    Give ``address`` to start a replacement on the address of one that died (the client reconnects). ``memory``:
    the memory file in which NPCs remember the players the game names (next to the game's saves; None: the
    sidecar's default, ``$NPC_VOICE_MEMORY`` or the user's data folder).
    ``procs``: engine worker processes (``serve --procs``; ``None``: the sidecar's default, one per core;
    1: the sessions run in the sidecar's own process, the quickest start, for a single-player game).
    ``args``: more ``serve`` options (``--ray ADDRESS``, ``--capacity N``...).
    ``workers`` follows the engine workers the sidecar reports (name -> what it said: pid, capacity...), and
    ``worker_events`` every report with its time (``time.monotonic()``), ``"up"`` or ``"lost"``.
    """

    def __init__(
        self,
        persona_dir: PersonaFolders = None,
        address: str | None = None,
        procs: int | None = None,
        args: Sequence[str] = (),
        recogniser: str | None = None,
        memory: str | os.PathLike | None = None,
    ) -> None:
        """``recogniser``: the sidecar's accurate recogniser (``npc-voice serve --asr``; None: its default)."""
        self._tmp = None if address else tempfile.mkdtemp(prefix="npc-voice-")
        self.address = address or f"ipc://{self._tmp}/sidecar.sock"
        # -P: the working directory is not put on the path, so the sidecar runs the npc_voice this process
        # imported (the installed one, or PYTHONPATH's), never a checkout that happens to be the cwd.
        cmd = [sys.executable, "-P", "-m", "npc_voice.cli", "serve", "--address", self.address]
        folders = [persona_dir] if isinstance(persona_dir, str | Path) else list(persona_dir or [])
        for folder in folders:  # searched before $NPC_VOICE_PERSONAS and the built-in personas
            cmd += ["--personas", str(folder)]
        if recogniser:
            cmd += ["--asr", recogniser]
        if memory is not None:
            cmd += ["--memory", os.fspath(memory)]
        if procs is not None:
            cmd += ["--procs", str(procs)]
        cmd += list(args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True)
        self.startup_s = 0.0
        self.ready_line = ""
        self.workers: dict[str, dict[str, Any]] = {}
        self.worker_events: list[tuple[float, str, dict[str, Any]]] = []

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until the sidecar prints its ready line (models loaded, socket bound, workers up)."""
        t = time.monotonic()
        timer = threading.Timer(timeout, self.proc.kill)
        timer.start()
        try:
            while True:
                line = self.proc.stdout.readline() if self.proc.stdout else ""
                if not line or not self._worker_line(line):
                    break
        finally:
            timer.cancel()
        if "ready" not in line:
            self.proc.kill()
            raise RuntimeError(
                f"sidecar failed to start within {timeout:.0f} s: {line.strip() or 'it exited'}"
            )
        self.ready_line = line.strip()
        self.startup_s = time.monotonic() - t
        threading.Thread(target=self._echo_output, daemon=True).start()

    def _worker_line(self, line: str) -> bool:
        """Take in a worker report; False for any other line."""
        if not line.startswith(WORKER_LINE):
            return False
        what, _, payload = line[len(WORKER_LINE):].partition(" ")
        try:
            info = json.loads(payload)
        except json.JSONDecodeError:
            return False
        self.worker_events.append((time.monotonic(), what, info))
        if what == "up":
            self.workers[info["name"]] = info
        return True

    def _echo_output(self) -> None:
        for line in self.proc.stdout or []:
            if not self._worker_line(line):
                print(f"[sidecar] {line.rstrip()}", file=sys.stderr)

    def worker_pids(self) -> list[int]:
        """The engine worker processes now up (none in the in-process mode)."""
        return [int(info["pid"]) for info in self.workers.values() if info.get("pid") != self.proc.pid]

    def kill(self) -> None:
        """``kill -9``: the crash a fault test injects; no clean-up runs in the sidecar."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(15)

    def stop(self, remove_address: bool = True) -> None:
        """Terminate the process; ``remove_address=False`` keeps the ipc folder for a replacement."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self._tmp is not None and remove_address:
            for name in os.listdir(self._tmp):
                os.unlink(os.path.join(self._tmp, name))
            os.rmdir(self._tmp)
