"""The live sound card: microphone and loudspeaker through sounddevice (PortAudio).

An input and an output stream run on the device's sample clock; what the loudspeaker played while each
microphone block was captured goes to the sidecar as the echo reference, lined up by counting samples
(``PlayedHistory``). The callbacks never block: captured blocks are gathered into 200 ms chunks
(``ChunkAssembler``) and handed over through a queue; the loudspeaker pulls from the caller's ``pull`` (a
jitter buffer, or the game's mixer).

Three things a player would otherwise see:
- ALSA and JACK print to the terminal whenever PortAudio probes devices or recovers from an underrun
  ("ALSA lib pcm.c:8570:(snd_pcm_recover) underrun occurred"). ``quiet_audio_libraries`` installs
  their error handlers (ctypes) before PortAudio is loaded, so those lines go to the ``npc_voice.audio``
  logger at DEBUG level instead; nothing else on stderr is touched.
- A device that goes away (unplugged, the sound server killed) stops the stream: PortAudio calls its
  ``finished_callback``, or the callback simply stops coming. ``lost`` says so with a plain reason, and
  ``on_lost`` is called once, from a watchdog thread, so the caller can fall back.
- Latency: ``StreamSettings`` holds the block size and PortAudio's latency hint, measured with
  ``npc-voice bench mouth-to-ear`` (docs/perf/mouth_to_ear.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE

log = logging.getLogger("npc_voice.audio")

# (n, now) -> (int16 (n, channels) for the loudspeaker, mono int16 (n,) echo reference); ``now`` is the
# time.monotonic() at which the block's first sample reaches the loudspeaker.
PullFn = Callable[[int, float], tuple[np.ndarray, np.ndarray]]


class NoAudioDevice(RuntimeError):
    """No usable microphone/loudspeaker: PortAudio is missing or no device exists."""


@dataclass(frozen=True)
class StreamSettings:
    """How the PortAudio stream is opened; the figures behind each are in docs/perf/mouth_to_ear.md."""

    # Frames per callback: 20 ms. Measured mouth to ear over the 19 dev questions (bench mouth-to-ear):
    # 20 ms blocks 0.338 s median / 0.495 s p90; 10 ms blocks ran dry through PulseAudio's ALSA plugin
    # (p90 1.277 s, one question missed). Larger ones only add their length.
    block: int = 320
    # PortAudio's suggested latency, seconds or "low"/"high": "high" added ~150 ms to every answer
    # (0.492 s median, 0.759 s p90) for nothing.
    latency: float | str = "low"
    # A started stream whose callback has not run for this long has lost its device (it runs every
    # 20 ms; PulseAudio takes up to ~1.5 s to start a stream on a loaded machine, hence the start grace).
    # At 1.0 s a busy machine's pause read as a lost device and ended the sound mid-conversation: the live
    # cut-in test saw "no audio for 1.6 s" in a fresh-clone CI run and in 1 of 3 runs beside a bench.
    lost_after_s: float = 2.5
    start_grace_s: float = 5.0
    # The echo reference's offset between the two streams (``PlayedHistory``) moves only on evidence. Through
    # PulseAudio the stream times stray from the true offset by 1-8 ms for seconds and single blocks by up to
    # 18 ms (measured on the virtual card, docs/perf/mouth_to_ear.md): within the tolerance they are noise.
    align_tolerance_s: float = 0.02
    align_sustain_s: float = 0.2  # ...beyond it for this long in a row: an unreported underrun moved the output
    align_settle_s: float = 0.2  # after an xrun the new offset is the median of this much of the stream times


@dataclass
class CapturedChunk:
    """200 ms of microphone, the audio played meanwhile, and the stream time it ended."""

    pcm: np.ndarray
    played: np.ndarray
    t_end: float
    level_dbfs: float


def level_dbfs(pcm: np.ndarray) -> float:
    """RMS level of int16 audio in dB full scale (-inf guarded)."""
    rms = float(np.sqrt(np.mean(pcm.astype(np.float32) ** 2)) + 1e-9)
    return 20.0 * float(np.log10(rms / 32768.0))


class ChunkAssembler:
    """Gathers device blocks of microphone and played audio into 200 ms ``CapturedChunk`` s."""

    def __init__(self, maxsize: int = 16) -> None:
        self.chunks: queue.Queue[CapturedChunk] = queue.Queue(maxsize=maxsize)
        self._mic = np.zeros(CHUNK_SAMPLES, np.int16)
        self._played = np.zeros(CHUNK_SAMPLES, np.int16)
        self._fill = 0
        self.overruns = 0

    def feed(self, mic: np.ndarray, played: np.ndarray, t_end: float) -> None:
        """One block captured while ``played`` was playing; ``t_end`` is the time of its last sample."""
        n, i = len(mic), 0
        while i < n:
            take = min(n - i, CHUNK_SAMPLES - self._fill)
            self._mic[self._fill : self._fill + take] = mic[i : i + take]
            self._played[self._fill : self._fill + take] = played[i : i + take]
            self._fill += take
            i += take
            if self._fill == CHUNK_SAMPLES:
                chunk = CapturedChunk(
                    pcm=self._mic.copy(),
                    played=self._played.copy(),
                    t_end=t_end - (n - i) / SAMPLE_RATE,
                    level_dbfs=level_dbfs(self._mic),
                )
                try:
                    self.chunks.put_nowait(chunk)
                except queue.Full:
                    self.overruns += 1
                self._fill = 0


# ----------------------------------------------------------------------------------------------- quiet

_ALSA_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p)
_JACK_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
_handlers: list[Any] = []  # the ctypes callbacks must live as long as the libraries may call them
_quiet_lock = threading.Lock()


def _alsa_message(file: bytes | None, line: int, function: bytes | None, err: int, fmt: bytes | None) -> None:
    # The format's arguments are C varargs that ctypes cannot read: log the format, which says enough.
    log.debug("ALSA %s:%d (%s) %s [err %d]", (file or b"").decode(errors="replace"), line,
              (function or b"").decode(errors="replace"), (fmt or b"").decode(errors="replace"), err)


def _jack_message(msg: bytes | None) -> None:
    log.debug("JACK %s", (msg or b"").decode(errors="replace"))


def quiet_audio_libraries() -> None:
    """Send ALSA's and JACK's terminal messages to logging (DEBUG); call before PortAudio is loaded."""
    with _quiet_lock:
        if _handlers:
            return
        os.environ.setdefault("JACK_NO_START_SERVER", "1")  # probing must not start a JACK server
        for name, setter, kind, fn in (
            ("asound", ("snd_lib_error_set_handler",), _ALSA_HANDLER, _alsa_message),
            ("jack", ("jack_set_error_function", "jack_set_info_function"), _JACK_HANDLER, _jack_message),
        ):
            path = ctypes.util.find_library(name)
            if path is None:
                continue
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            handler = kind(fn)
            _handlers.append(handler)
            for symbol in setter:
                if hasattr(lib, symbol):
                    getattr(lib, symbol)(handler)
        _handlers.append(None)  # done, even where neither library exists


def sounddevice() -> ModuleType:
    """The sounddevice module, loaded quietly; ``NoAudioDevice`` if PortAudio is missing."""
    quiet_audio_libraries()
    try:
        import sounddevice as sd
    except OSError as exc:  # PortAudio library not found
        raise NoAudioDevice("PortAudio is not installed (Debian: apt-get install libportaudio2)") from exc
    return sd


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device as a person picks it."""

    index: int
    name: str
    host_api: str
    inputs: int
    outputs: int
    default_input: bool
    default_output: bool

    def line(self) -> str:
        marks = ("<" if self.default_input else " ") + (">" if self.default_output else " ")
        return f"{marks} {self.index:3d} {self.name} ({self.host_api}, {self.inputs} in, {self.outputs} out)"


def list_devices() -> list[DeviceInfo]:
    """Every device PortAudio sees (``NoAudioDevice`` if PortAudio is missing)."""
    sd = sounddevice()
    apis = [a["name"] for a in sd.query_hostapis()]
    default_in, default_out = sd.default.device
    return [
        DeviceInfo(d["index"], d["name"], apis[d["hostapi"]], d["max_input_channels"], d["max_output_channels"],
                   d["index"] == default_in, d["index"] == default_out)
        for d in sd.query_devices()
    ]


def parse_device(device: int | str | None) -> int | str | None:
    """A device as a command line gives it: an index ("3") or a (part of a) name ("pulse")."""
    if isinstance(device, str) and device.strip().isdigit():
        return int(device)
    return device or None


def device_names(device: int | str | None, with_mic: bool = True) -> tuple[str | None, str]:
    """The input and output device names a stream on ``device`` uses (``NoAudioDevice`` if there is none)."""
    sd = sounddevice()
    try:
        out = sd.query_devices(device, "output")["name"]
        inp = sd.query_devices(device, "input")["name"] if with_mic else None
    except Exception as exc:  # noqa: BLE001 - sounddevice raises ValueError / PortAudioError
        raise NoAudioDevice(f"no such sound device: {device!r} ({exc})") from exc
    return inp, out


def check_duplex(device: int | str | None = None, out_channels: int = 1) -> None:
    """Raise ``NoAudioDevice`` with a plain reason unless a 16 kHz duplex stream can open."""
    sd = sounddevice()
    try:
        sd.check_input_settings(device=device, channels=1, samplerate=SAMPLE_RATE, dtype="int16")
        sd.check_output_settings(device=device, channels=out_channels, samplerate=SAMPLE_RATE, dtype="int16")
    except Exception as exc:  # sounddevice raises PortAudioError or ValueError
        raise NoAudioDevice(f"no usable microphone and speaker ({exc})") from exc


class PlayedHistory:
    """The echo reference: the samples the loudspeaker played while each microphone block was captured.

    Both streams run on one sample clock, so between glitches the loudspeaker's sample ``k`` sounds while the
    microphone captures its sample ``k - offset``: a constant, counted in samples. PortAudio's stream times
    only say what that offset is; they are not steady enough to line up each block by its own times: through
    PulseAudio they wander by 1-8 ms within seconds and single blocks are off by 3-18 ms, and lining up each
    20 ms block by them (as before) moved the reference against the echo by a sample every ~100 ms and by
    ms at block edges inside a chunk (measured on the virtual card: the echo 60-80 ms behind its reference,
    never the same for long), which no echo canceller follows. So the offset moves only on evidence:

    - an xrun (an output underflow or input overflow, ``glitch``) really moves the streams against each other:
      the offset becomes the median of the next ``settle_s`` of stream times;
    - otherwise the stream times must leave the offset by more than ``tolerance_s`` for ``sustain_s`` in a row
      (an unreported underrun: the output callback came late and PulseAudio played silence).

    What is left (the stream times' own error, a few ms; a slow drift between two devices' clocks) is the echo
    canceller's to follow: it is steady, which is what the canceller's delay tracker needs.
    """

    def __init__(self, settings: StreamSettings = StreamSettings(), seconds: float = 3.0) -> None:  # noqa: B008
        self._buf = np.zeros(int(seconds * SAMPLE_RATE), np.int16)
        self._played = 0  # loudspeaker samples appended so far
        self._captured = 0  # microphone samples looked up so far
        self._out_anchor: float | None = None  # stream time of loudspeaker sample 0, by the latest block's time
        self.offset: int | None = None  # loudspeaker sample index minus the microphone's, for the same instant
        self.moves = 0  # times the offset moved after it settled (xruns and sustained departures)
        blocks = settings.block / SAMPLE_RATE
        self._tolerance = settings.align_tolerance_s * SAMPLE_RATE
        self._sustain = max(1, round(settings.align_sustain_s / blocks))
        self._settle = max(1, round(settings.align_settle_s / blocks))
        self._departed: list[float] = []  # consecutive stream-time offsets beyond the tolerance
        self._settling: list[float] | None = None  # stream-time offsets since a glitch (or the start)
        self._glitch = False
        self._lock = threading.Lock()

    def append(self, mono: np.ndarray, dac_start: float, glitch: bool = False) -> None:
        """What the loudspeaker plays next, its first sample at ``dac_start`` (stream time); ``glitch``: the
        output stream underran just before this block."""
        n, size = len(mono), len(self._buf)
        with self._lock:
            idx = (self._played + np.arange(n)) % size
            self._buf[idx] = mono
            self._out_anchor = dac_start - self._played / SAMPLE_RATE
            self._played += n
            self._glitch = self._glitch or glitch

    def captured(self, n: int, adc_start: float, glitch: bool = False) -> np.ndarray:
        """The reference for the next ``n`` microphone samples, the first captured at ``adc_start`` (stream
        time); ``glitch``: the input stream overflowed just before this block. Silence outside the history."""
        out = np.zeros(n, np.int16)
        with self._lock:
            if self._out_anchor is not None:
                seen = (adc_start - self._captured / SAMPLE_RATE - self._out_anchor) * SAMPLE_RATE
                self._track(seen, glitch or self._glitch)
                self._glitch = False
                assert self.offset is not None
                first = self._captured + self.offset
                lo, hi = max(first, self._played - len(self._buf)), min(first + n, self._played)
                if hi > lo:
                    out[lo - first : hi - first] = self._buf[np.arange(lo, hi) % len(self._buf)]
            self._captured += n
        return out

    def _track(self, seen: float, glitch: bool) -> None:
        """Move the offset on a glitch or on a sustained departure of the stream times, else keep it."""
        if self.offset is None or glitch:
            self._settling = []
            self.moves += self.offset is not None
        if self._settling is not None:
            self._settling.append(seen)
            self.offset = int(round(float(np.median(self._settling))))
            if len(self._settling) >= self._settle:
                self._settling, self._departed = None, []
            return
        if abs(seen - self.offset) <= self._tolerance:
            self._departed.clear()
            return
        self._departed.append(seen)
        if len(self._departed) >= self._sustain:
            self.offset = int(round(float(np.median(self._departed))))
            self._departed.clear()
            self.moves += 1


class LiveDuplexDevice:
    """The sound card: microphone (unless ``with_mic`` is False) and loudspeaker.

    ``chunks`` yields 200 ms ``CapturedChunk`` s with the echo reference; without a microphone the captured
    side is silence. All times are ``time.monotonic()`` seconds: ``pull`` gets the moment its block reaches
    the loudspeaker, a chunk's ``t_end`` the moment its last sample reached the microphone.

    Input and output are two PortAudio streams, not one duplex stream: a duplex stream moves the same
    number of frames both ways per callback, so audio the capture side buffered while the device started
    (PulseAudio: up to a second) stays queued for the whole conversation, and every word reaches the
    sidecar that much late (measured: 0.95 s of echo path on the virtual card). A separate input stream
    drains what is queued; ``PlayedHistory`` lines the echo reference up by time instead.
    """

    def __init__(
        self,
        pull: PullFn,
        device: int | str | None = None,
        *,
        out_channels: int = 1,
        with_mic: bool = True,
        settings: StreamSettings = StreamSettings(),  # noqa: B008 - frozen
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        sd = sounddevice()
        if with_mic:
            check_duplex(device, out_channels)
        self.input_name, self.output_name = device_names(device, with_mic)
        self.settings = settings
        self.with_mic = with_mic
        self._pull = pull
        self._assembler = ChunkAssembler()
        self.chunks = self._assembler.chunks
        self._history = PlayedHistory(settings)
        self.on_lost = on_lost
        self.xruns = 0  # callbacks that reported an input overflow or output underflow
        self._last_callback: dict[str, float] = {}
        self._clock_offset: float | None = None
        self._started_at: float | None = None
        self._finished = threading.Event()
        self._stopping = False
        self._lost: str | None = None
        self._watchdog: threading.Thread | None = None
        kwargs = dict(samplerate=SAMPLE_RATE, blocksize=settings.block, dtype="int16", device=device,
                      latency=settings.latency, finished_callback=self._finished.set)
        self._streams: list[Any] = []
        try:
            self._streams.append(sd.OutputStream(channels=out_channels, callback=self._output, **kwargs))
            if with_mic:
                self._streams.append(sd.InputStream(channels=1, callback=self._input, **kwargs))
        except Exception as exc:  # noqa: BLE001 - PortAudioError: the device refused the stream
            for stream in self._streams:
                stream.close()
            raise NoAudioDevice(f"the sound device would not open ({exc})") from exc

    # -------------------------------------------------------------------------------- audio threads

    def _offset(self, now: float, stream_now: float) -> float:
        """``time.monotonic()`` minus PortAudio's stream clock. A Python callback starts some ms after
        PortAudio read its clock (more when another thread holds the GIL), so ``now - stream_now`` is the
        offset plus that delay: the smallest seen is the truest. (Stamping by ``now`` instead shifted the echo
        reference by +-10 ms from block to block, more than an echo canceller can follow.)"""
        seen = now - stream_now
        if self._clock_offset is None or seen < self._clock_offset:
            self._clock_offset = seen
        return self._clock_offset

    def _output(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        now = time.monotonic()
        self._last_callback["out"] = now
        if status:
            self.xruns += 1
        dac = time_info.outputBufferDacTime + self._offset(now, time_info.currentTime)
        out, mono = self._pull(frames, dac)
        outdata[:] = out.reshape(frames, -1)
        if self.with_mic:  # on the stream clock: the offset to time.monotonic() only changes its estimate
            self._history.append(mono, time_info.outputBufferDacTime, glitch=bool(status))
        else:  # type-to-speak: nothing to capture, but chunks keep the 200 ms pace (and carry what played)
            self._assembler.feed(np.zeros(frames, np.int16), mono, now)

    def _input(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        now = time.monotonic()
        self._last_callback["in"] = now
        if status:
            self.xruns += 1
        adc = time_info.inputBufferAdcTime + self._offset(now, time_info.currentTime)
        played = self._history.captured(frames, time_info.inputBufferAdcTime, glitch=bool(status))
        self._assembler.feed(indata[:, 0], played, adc + frames / SAMPLE_RATE)

    # -------------------------------------------------------------------------------- control

    @property
    def time(self) -> float:
        return time.monotonic()

    @property
    def latency(self) -> tuple[float, float]:
        """PortAudio's input and output latency in seconds (input 0 without a microphone)."""
        out = float(self._streams[0].latency)
        return (float(self._streams[1].latency) if self.with_mic else 0.0), out

    @property
    def lost(self) -> str | None:
        """Why the device stopped working (a sentence), or None while it works."""
        if self._lost is None and not self._stopping and self._started_at is not None:
            now = time.monotonic()
            if self._finished.is_set():
                self._lost = "the sound device stopped (it was unplugged, or the sound server went away)"
            elif len(self._last_callback) < len(self._streams):
                if now - self._started_at > self.settings.start_grace_s:
                    self._lost = f"the sound device never started ({self.settings.start_grace_s:.0f} s)"
            elif now - min(self._last_callback.values()) > self.settings.lost_after_s:
                quiet = now - min(self._last_callback.values())
                self._lost = f"the sound device went silent (no audio for {quiet:.1f} s)"
        return self._lost

    def start(self) -> None:
        self._started_at = time.monotonic()
        for stream in self._streams:
            stream.start()
        self._watchdog = threading.Thread(target=self._watch, name="npc-voice-device-watchdog", daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        while not self._stopping:
            reason = self.lost
            if reason is not None:
                log.warning("%s", reason)
                if self.on_lost is not None:
                    self.on_lost(reason)
                return
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop and close; never raises (a lost device cannot always be stopped cleanly)."""
        self._stopping = True
        for stream in self._streams:
            for step in (stream.stop, stream.close):
                try:
                    step()
                except Exception as exc:  # noqa: BLE001
                    log.debug("sound device did not stop cleanly: %s", exc)
