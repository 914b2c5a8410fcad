"""Who is speaking: a speaker embedding (d-vector) of a stretch of speech, to tell the session's player from
other voices in the room.

The network is Resemblyzer's GE2E voice encoder (a 3-layer LSTM over 40-band mel frames, 256-d embeddings;
trained on LibriSpeech, VoxCeleb 1 and 2 by its authors), whose weights ship inside the ``resemblyzer`` wheel
(``pretrained.pt``, 17 MB): they are read from the installed package, never downloaded. Only the weights are
used: the package's own audio helpers import webrtcvad and librosa, which the engine has no use for at run
time, so the mel filterbank is computed here exactly as ``librosa.feature.melspectrogram`` does (Slaney scale
and area norm, Hann window, 25 ms / 10 ms, power 2; ``tests/test_speaker.py`` checks it against librosa).

An utterance's embedding is the normalised mean of its 1.6 s partial windows' embeddings (1.3 a second), as
Resemblyzer's ``embed_utterance`` makes it; about 10 ms a second of speech on one core.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

from npc_voice.audio.format import SAMPLE_RATE

N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s
PARTIAL_RATE = 1.3  # partial windows per second of audio
MIN_COVERAGE = 0.75  # a last window this much filled is kept (zero-padded)
TARGET_DBFS = -30.0  # quieter speech is raised to this level first, as Resemblyzer's preprocessing does


def weights_path() -> Path | None:
    """``pretrained.pt`` of the installed ``resemblyzer`` package (found without importing it), or None."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    return path if path.exists() else None


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear to 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    mel = f / (200.0 / 3)
    log = f >= 1000.0
    return np.where(log, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f = m * (200.0 / 3)
    log = m >= 15.0
    return np.where(log, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), f)


def mel_filters(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """The (n_mels, n_fft // 2 + 1) triangular filterbank of ``librosa.filters.mel`` (htk=False, norm='slaney')."""
    fft_freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    weights = np.maximum(0, np.minimum(-ramps[:-2] / fdiff[:-1, None], ramps[2:] / fdiff[1:, None]))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def mel_frames(wave: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """(frames, 40) power mel spectrogram of float ``wave``: centred frames (zero padding, as librosa >= 0.10)."""
    padded = np.pad(wave.astype(np.float32), (N_FFT // 2, N_FFT // 2))
    n = 1 + (len(padded) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann
    power = np.abs(np.fft.rfft(padded[idx] * window, axis=1)) ** 2
    return (power @ filters.T).astype(np.float32)


class SpeakerEncoder:
    """Resemblyzer's voice encoder on its packaged weights; thread-safe (one forward pass at a time)."""

    _shared: SpeakerEncoder | None = None
    _shared_lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        import torch
        from torch import nn

        self.lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, 256)
        state = torch.load(path, map_location="cpu", weights_only=True)["model_state"]
        self.lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
        self.linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
        self.lstm.eval()
        self.linear.eval()
        self.filters = mel_filters()
        self._lock = threading.Lock()

    @classmethod
    def available(cls) -> bool:
        return weights_path() is not None

    @classmethod
    def shared(cls) -> SpeakerEncoder | None:
        """One encoder per process (None if the ``resemblyzer`` wheel is not installed)."""
        with cls._shared_lock:
            if cls._shared is None:
                path = weights_path()
                if path is None:
                    return None
                cls._shared = cls(path)
            return cls._shared

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """The unit-length 256-d embedding of 16 kHz ``audio`` (int16 or float), speech only."""
        import torch

        wave = audio.astype(np.float32) / 32768.0 if audio.dtype == np.int16 else audio.astype(np.float32)
        rms_db = 10 * np.log10(np.mean(wave**2) + 1e-12)
        if rms_db < TARGET_DBFS:
            wave = wave * 10 ** ((TARGET_DBFS - rms_db) / 20)
        n_frames = int(np.ceil((len(wave) + 1) / HOP))
        step = int(np.round(SAMPLE_RATE / PARTIAL_RATE / HOP))
        starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
        last = starts[-1] * HOP
        if len(starts) > 1 and (len(wave) - last) / (PARTIAL_FRAMES * HOP) < MIN_COVERAGE:
            starts = starts[:-1]
        need = (starts[-1] + PARTIAL_FRAMES) * HOP
        wave = np.pad(wave, (0, max(0, need - len(wave))))
        mels = mel_frames(wave, self.filters)
        batch = np.stack([mels[s : s + PARTIAL_FRAMES] for s in starts])
        with self._lock, torch.inference_mode():
            _, (hidden, _) = self.lstm(torch.from_numpy(batch))
            raw = torch.relu(self.linear(hidden[-1]))
            partial = raw / torch.norm(raw, dim=1, keepdim=True)
        mean = partial.mean(0).numpy()
        return mean / (np.linalg.norm(mean) + 1e-9)
