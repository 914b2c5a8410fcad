"""Start and stop a sidecar as its own process (the game, the bench and ``talk`` all do this)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from npc_voice.data import PersonaFolders


class SidecarProcess:
    """A sidecar started as its own process on a private ipc:// address, stopped on exit.

    Give ``address`` to start a replacement on the address of one that died (the client reconnects). ``memory``:
    the memory file in which NPCs remember the players the game names (next to the game's saves; None: the
    sidecar's default, ``$NPC_VOICE_MEMORY`` or the user's data folder).
    """

    def __init__(self, persona_dir: PersonaFolders = None, address: str | None = None,
                 recogniser: str | None = None, memory: str | os.PathLike | None = None) -> None:
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
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True)
        self.startup_s = 0.0

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until the sidecar prints its ready line (models loaded, socket bound)."""
        t = time.monotonic()
        timer = threading.Timer(timeout, self.proc.kill)
        timer.start()
        try:
            line = self.proc.stdout.readline() if self.proc.stdout else ""
        finally:
            timer.cancel()
        if "ready" not in line:
            self.proc.kill()
            raise RuntimeError(
                f"sidecar failed to start within {timeout:.0f} s: {line.strip() or 'it exited'}"
            )
        self.startup_s = time.monotonic() - t
        threading.Thread(target=self._echo_output, daemon=True).start()

    def _echo_output(self) -> None:
        for line in self.proc.stdout or []:
            print(f"[sidecar] {line.rstrip()}", file=sys.stderr)

    def kill(self) -> None:
        """``kill -9``: the crash a fault test injects; no clean-up runs in the sidecar."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(15)

    def stop(self, remove_address: bool = True) -> None:
        """Terminate the process; ``remove_address=False`` keeps the ipc folder for a replacement."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self._tmp is not None and remove_address:
            for name in os.listdir(self._tmp):
                os.unlink(os.path.join(self._tmp, name))
            os.rmdir(self._tmp)
