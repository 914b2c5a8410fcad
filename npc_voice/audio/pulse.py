"""A virtual sound card: a private PulseAudio server with a loudspeaker, a microphone and the air between.

The live path (PortAudio through ALSA's ``pulse`` device) is tested and measured on this, with no sound
card and without touching any PulseAudio the machine runs: the server has its own runtime folder and
socket, never exits on idle, and is killed at the end (or mid-conversation, to lose the device).

One stereo null sink is **the air**: its left channel is what the player's mouth says (plus what leaks
from the loudspeaker), its right channel what the NPC's loudspeaker plays. So one recording of the air's
monitor holds both on one sample clock: the mouth-to-ear delay is read off it exactly, with every device
buffer of the live path included.
- ``speaker``: the NPC's loudspeaker (default sink), a remap of the air's right channel.
- ``mouth``: where the player's voice is played, a remap of the air's left channel.
- ``mic``: the NPC's microphone (default source), the air monitor's left channel.
- ``echo(gain_db, delay_ms)``: a loopback from the loudspeaker into the mouth, as a laptop without
  headphones: the NPC hears itself, later and quieter.

Needs Debian's ``pulseaudio`` and ``pulseaudio-utils`` (``scripts/setup.sh`` installs them), and
``libasound2-plugins`` for PortAudio to see the ``pulse`` device.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from npc_voice.audio.format import SAMPLE_RATE


class NoPulseAudio(RuntimeError):
    """PulseAudio (or its command-line tools) is not installed, or the server would not start."""


def available() -> str | None:
    """None if a virtual sound card can be made here, else why not."""
    missing = [tool for tool in ("pulseaudio", "pactl", "pacat", "parec") if shutil.which(tool) is None]
    if missing:
        return f"not installed: {', '.join(missing)} (Debian: apt-get install pulseaudio pulseaudio-utils)"
    if not any(Path(d, "libasound_module_pcm_pulse.so").exists()
               for d in ("/usr/lib/x86_64-linux-gnu/alsa-lib", "/usr/lib/aarch64-linux-gnu/alsa-lib",
                         "/usr/lib/alsa-lib", "/usr/lib64/alsa-lib")):
        return "not installed: libasound2-plugins (PortAudio's pulse device)"
    return None


class VirtualSoundCard:
    """A private PulseAudio server with the devices above; ``env`` is what a client process needs."""

    def __init__(self, root: Path | None = None) -> None:
        why = available()
        if why:
            raise NoPulseAudio(why)
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="npc-voice-pulse-"))
        for sub in ("run", "home", "xdg"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.socket = self.root / "run" / "native"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PULSE_")},
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_RUNTIME_PATH": str(self.root / "run"),
            "XDG_RUNTIME_DIR": str(self.root / "xdg"),
            "PULSE_CLIENTCONFIG": str(self.root / "client.conf"),
        }
        (self.root / "client.conf").write_text("autospawn = no\n")
        self.server: subprocess.Popen[bytes] | None = None
        self._echo_module: str | None = None

    # ------------------------------------------------------------------ server

    def start(self, timeout: float = 20.0) -> VirtualSoundCard:
        env = {**self.env, "HOME": str(self.root / "home")}
        self.server = subprocess.Popen(
            ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=false",
             "--disable-shm=yes", "--log-target=file:" + str(self.root / "server.log"),
             "-L", f"module-native-protocol-unix socket={self.socket} auth-anonymous=1",
             "-L", f"module-null-sink sink_name=air channels=2 rate={SAMPLE_RATE} format=s16le "
                   "sink_properties=device.description=Air"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while subprocess.run(["pactl", "info"], env=self.env, capture_output=True).returncode != 0:
            if self.server.poll() is not None or time.monotonic() > deadline:
                log = (self.root / "server.log").read_text() if (self.root / "server.log").exists() else ""
                self.stop()
                raise NoPulseAudio(f"the PulseAudio server did not start: {log[-500:]}")
            time.sleep(0.1)
        rate = f"rate={SAMPLE_RATE} format=s16le channels=1 channel_map=mono remix=no"
        self.pactl("load-module", "module-remap-sink", "sink_name=speaker", "master=air", *rate.split(),
                   "master_channel_map=front-right", "sink_properties=device.description=NPC-loudspeaker")
        self.pactl("load-module", "module-remap-sink", "sink_name=mouth", "master=air", *rate.split(),
                   "master_channel_map=front-left", "sink_properties=device.description=Player-mouth")
        self.pactl("load-module", "module-remap-source", "source_name=mic", "master=air.monitor", *rate.split(),
                   "master_channel_map=front-left", "source_properties=device.description=NPC-microphone")
        self.pactl("set-default-sink", "speaker")
        self.pactl("set-default-source", "mic")
        return self

    def pactl(self, *args: str) -> str:
        done = subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=20)
        if done.returncode != 0:
            raise NoPulseAudio(f"pactl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout.strip()

    def echo(self, gain_db: float, delay_ms: float) -> None:
        """Feed the loudspeaker back into the mouth (the NPC hears itself), ``delay_ms`` later, ``gain_db``.

        A new call replaces the loopback: with ``adjust_time=0`` (no resampling, so the echo is an exact copy)
        its delay only grows as the server stalls, measured 60 -> 192 ms over 19 conversations in a row."""
        if self._echo_module is not None:
            self.pactl("unload-module", self._echo_module)
            self._echo_module = None
        self._echo_module = self.pactl("load-module", "module-loopback", "source=speaker.monitor", "sink=mouth",
                                       f"latency_msec={int(delay_ms)}", "adjust_time=0", "source_dont_move=true",
                                       "sink_dont_move=true", "remix=no")
        for line in self.pactl("list", "short", "sink-inputs").splitlines():
            fields = line.split()
            if len(fields) > 1 and fields[1] == self._echo_module:
                self.pactl("set-sink-input-volume", fields[0], f"{gain_db:+.1f}dB")

    def kill(self) -> None:
        """Kill the server outright: every client's device is lost at once (a crash, an unplugged card)."""
        if self.server is not None and self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait(10)

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> VirtualSoundCard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ the player's side

    def say(self, pcm: np.ndarray) -> subprocess.Popen[bytes]:
        """Play int16 16 kHz mono audio into the mouth (the player speaks); returns at once."""
        proc = subprocess.Popen(["pacat", "--playback", "--device=mouth", f"--rate={SAMPLE_RATE}", "--channels=1",
                                 "--format=s16le", "--raw", "--latency-msec=20"],
                                env=self.env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        assert proc.stdin is not None
        proc.stdin.write(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
        proc.stdin.close()
        return proc

    def listen(self) -> AirRecording:
        """Start recording the air: the player's channel and the loudspeaker's, on one clock."""
        return AirRecording(self.env)


class AirRecording:
    """The air's monitor, recorded until ``stop``: ``mouth`` and ``speaker`` int16 arrays, sample-aligned."""

    def __init__(self, env: dict[str, str]) -> None:
        self._proc = subprocess.Popen(["parec", "--device=air.monitor", f"--rate={SAMPLE_RATE}", "--channels=2",
                                       "--format=s16le", "--raw", "--latency-msec=20"],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._data = bytearray()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        while chunk := self._proc.stdout.read1(65536):
            self._data += chunk

    @property
    def seconds(self) -> float:
        return len(self._data) / 4 / SAMPLE_RATE

    def stop(self) -> tuple[np.ndarray, np.ndarray]:
        self._proc.terminate()
        self._proc.wait(10)
        self._thread.join(5)
        n = len(self._data) // 4 * 4
        stereo = np.frombuffer(bytes(self._data[:n]), dtype="<i2").reshape(-1, 2)
        return stereo[:, 0].copy(), stereo[:, 1].copy()
