"""Speech recognition: the persona LM file, streaming pocketsphinx partials, the Whisper second pass."""

from __future__ import annotations

import math
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np
import pocketsphinx
import pytest
import yaml

from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE, to_int16
from npc_voice.data import builtin_persona_dir
from npc_voice.features.asr import AsrModels, StreamingRecognizer
from npc_voice.features.lm import BOS, EOS, build_persona_lm
from npc_voice.train.dialogues import decode_wav

PERSONA = builtin_persona_dir() / "blacksmith.yaml"


@pytest.fixture(scope="module")
def lm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lm")


@pytest.fixture(scope="module")
def persona_lm(lm_cache: Path):
    return build_persona_lm(PERSONA, cache_dir=lm_cache)


@pytest.fixture(scope="module")
def models():
    m = AsrModels()
    yield m
    m.close()


def festival(text: str, tmp: Path) -> np.ndarray:
    """Festival's voice (pocketsphinx reads it best of the local synthesisers), at 16 kHz, padded."""
    raw = tmp / "raw.wav"
    subprocess.run(["text2wave", "-o", str(raw)], input=text.encode(), check=True, capture_output=True)
    pad = np.zeros(SAMPLE_RATE // 4, dtype=np.int16)
    return np.concatenate([pad, to_int16(decode_wav(raw.read_bytes())), pad, pad])


def parse_arpa(path: Path) -> tuple[dict[int, int], dict[tuple[str, ...], tuple[float, float]]]:
    """Declared counts and {ngram: (log10 prob, log10 backoff)} of an ARPA file."""
    declared: dict[int, int] = {}
    grams: dict[tuple[str, ...], tuple[float, float]] = {}
    order = 0
    for line in path.read_text().splitlines():
        if m := re.fullmatch(r"ngram (\d)=(\d+)", line):
            declared[int(m[1])] = int(m[2])
        elif m := re.fullmatch(r"\\(\d)-grams:", line):
            order = int(m[1])
        elif line.startswith("\\") or not line.strip():
            continue
        elif order:
            parts = line.split()
            words = tuple(parts[1 : 1 + order])
            grams[words] = (float(parts[0]), float(parts[1 + order]) if len(parts) > 1 + order else 0.0)
    return declared, grams


def arpa_prob(grams: dict, word: str, history: tuple[str, ...]) -> float:
    """P(word | history) by the ARPA backoff rule."""
    if (*history, word) in grams:
        return 10 ** grams[(*history, word)][0]
    if not history:
        raise KeyError(word)
    bow = grams.get(history, (0.0, 0.0))[1]
    return 10**bow * arpa_prob(grams, word, history[1:])


def test_lm_is_a_normalised_arpa_trigram_that_pocketsphinx_loads(persona_lm) -> None:
    declared, grams = parse_arpa(persona_lm.arpa_path)
    by_order: dict[int, int] = defaultdict(int)
    for g in grams:
        by_order[len(g)] += 1
    assert declared == dict(by_order)
    assert declared[3] > 0
    assert all(p <= 0.0 for p, _ in grams.values())
    targets = [g[0] for g in grams if len(g) == 1 and g[0] != BOS]
    # Every context, seen in the persona or not, is a probability distribution over the vocabulary.
    for history in [(), (BOS,), ("a",), ("buy", "a"), (BOS, "wait"), ("the", "weather")]:
        total = sum(arpa_prob(grams, w, history) for w in targets)
        assert math.isclose(total, 1.0, abs_tol=2e-3), (history, total)
    # The persona shifts probability towards its topics, but general English keeps its mass.
    assert arpa_prob(grams, "sword", ("buy", "a")) > arpa_prob(grams, "house", ("buy", "a"))
    assert arpa_prob(grams, "house", ("buy", "a")) > 1e-4
    dict_words = {line.split()[0].split("(")[0] for line in persona_lm.dict_path.read_text().splitlines()}
    assert dict_words == set(persona_lm.vocabulary) == set(targets) - {EOS}
    decoder = pocketsphinx.Decoder(lm=str(persona_lm.arpa_path), dict=str(persona_lm.dict_path), loglevel="FATAL")
    assert decoder.lookup_word("shield")


def test_lm_is_cached_by_content_and_reports_missing_words(persona_lm, lm_cache: Path, tmp_path: Path) -> None:
    again = build_persona_lm(PERSONA, cache_dir=lm_cache)
    assert again.from_cache and again.key == persona_lm.key and again.arpa_path == persona_lm.arpa_path
    persona = yaml.safe_load(PERSONA.read_text())
    persona["topics"]["buy_sword"]["examples"].append("Do you sell a zxqvblorp mace?")
    changed = build_persona_lm(persona, cache_dir=lm_cache)
    assert not changed.from_cache and changed.key != persona_lm.key
    assert "mace" not in persona_lm.vocabulary
    assert "zxqvblorp" in changed.missing_words and "mace" in changed.vocabulary


def test_cache_files_written_by_two_threads_at_once_both_land(tmp_path: Path, monkeypatch) -> None:
    """Two sessions of one sidecar (threads of one process) may write the same cache file at once: each
    writer has its own temporary file, so neither finds its file moved away by the other."""
    import threading

    from npc_voice.features import lm

    both_written = threading.Barrier(2)
    real_replace = lm.os.replace

    def replace_together(src: str, dst: Path) -> None:
        both_written.wait()  # each has written its temporary file; now both move it into place
        real_replace(src, dst)

    monkeypatch.setattr(lm.os, "replace", replace_together)
    target = tmp_path / "general-top10.txt"
    errors: list[BaseException] = []

    def write(text: str) -> None:
        try:
            lm._atomic_write(target, text)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"words {i}\n",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_text(encoding="utf-8") in {"words 0\n", "words 1\n"}
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary file left behind


def test_streaming_partials_grow_and_recognise_topic_words(models, persona_lm, tmp_path: Path) -> None:
    audio = festival("I want to buy a good sword from you.", tmp_path)
    rec = StreamingRecognizer(models, persona_lm)
    rec.start()
    partials = [rec.feed(audio[i : i + CHUNK_SAMPLES]) for i in range(0, audio.size, CHUNK_SAMPLES)]
    assert partials[0] == ""
    assert len(partials[-1].split()) > len(partials[len(partials) // 3].split()) > 0
    result = rec.finish(accurate=False)
    assert "sword" in result.fast_text.split()
    assert result.accurate_text is None and result.text == result.fast_text
    assert result.duration == pytest.approx(audio.size / SAMPLE_RATE)


def test_whisper_second_pass_sync_and_in_background(models, persona_lm, tmp_path: Path) -> None:
    audio = festival("Tell me the story of the dragon on the mountain.", tmp_path)
    rec = StreamingRecognizer(models, persona_lm)
    rec.start(preroll=audio[:CHUNK_SAMPLES])
    for i in range(CHUNK_SAMPLES, audio.size, CHUNK_SAMPLES):
        rec.feed(audio[i : i + CHUNK_SAMPLES])
    future = rec.submit_final()
    result = rec.finish()
    assert future.done() and result.accurate_text == future.result()
    words = re.sub(r"[^a-z ]", "", result.text.lower()).split()
    assert {"story", "dragon", "mountain"} <= set(words)
    assert models.transcribe(np.zeros(2 * SAMPLE_RATE, dtype=np.int16)) == ""
    readings = models.readings(audio)  # the beam's best readings, best first, for the persona to choose among
    assert len(readings) > 1 and readings[0][0] == models.transcribe(audio)
    assert [score for _, score in readings] == sorted((score for _, score in readings), reverse=True)
    assert models.readings(np.zeros(2 * SAMPLE_RATE, dtype=np.int16)) == []


def test_a_sure_read_keeps_how_the_voice_sounded_as_training_computes_it(models, tmp_path: Path) -> None:
    """The tone reader learns from ``AsrModels.voice`` and reads ``Read.voice`` at run time: the same numbers."""
    audio = festival("Good morning, I would like to buy a sword.", tmp_path)
    read = models.read(audio)
    assert read.voice is not None and read.voice.shape == (768,)  # tiny.en: 384 means and 384 spreads
    assert np.allclose(read.voice, models.voice(audio), atol=1e-4)
    assert np.all(read.voice[384:] >= 0)
    other = models.voice(festival("Get out of my shop, you thief!", tmp_path))
    assert not np.allclose(read.voice, other, atol=1e-2)
    assert models.read(audio, sure=False).voice is None  # no encoder states without the sure read


def test_utterance_audio_is_bounded_to_the_last_window(models, persona_lm) -> None:
    rec = StreamingRecognizer(models, persona_lm, max_seconds=1.0)
    rec.start()
    noise = (np.random.default_rng(0).standard_normal(int(2.5 * SAMPLE_RATE)) * 300).astype(np.int16)
    for i in range(0, noise.size, CHUNK_SAMPLES):
        rec.feed(noise[i : i + CHUNK_SAMPLES])
    assert np.array_equal(rec.audio(), noise[-SAMPLE_RATE:])
    rec.finish(accurate=False)
    with pytest.raises(RuntimeError):
        rec.feed(noise[:CHUNK_SAMPLES])


def test_the_spectrogram_of_a_short_turn_is_that_of_the_whole_padded_window(models) -> None:
    """Whisper's window is 10 s; a short turn's silence is filled in, not transformed: the same input."""
    rng = np.random.default_rng(0)
    window = models.window_samples
    for seconds in (0.3, 2.0, 9.7, 10.0):
        n = int(seconds * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        wave = (0.1 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(n))
        wave = wave.astype(np.float32)
        whole = models._features(np.pad(wave, (0, window - n)), padding=0)[:, : window // models._features.hop_length]
        assert np.allclose(models.log_mel(wave), whole, atol=1e-5)
    quiet = np.zeros(SAMPLE_RATE, np.float32)  # all silence: the clip, everywhere
    assert np.allclose(models.log_mel(quiet), models._features(np.pad(quiet, (0, window - SAMPLE_RATE)), padding=0)[
        :, : window // models._features.hop_length])


def test_whisper_prompt_names_the_topic_words_within_its_budget(persona_lm) -> None:
    from npc_voice.features.lm import MAX_KEYWORDS

    assert len(persona_lm.keywords) == MAX_KEYWORDS  # the blacksmith's examples hold more rare words than that
    assert {"sword", "shield", "forge", "dragon", "repair", "longsword"} <= set(persona_lm.keywords)
    assert list(persona_lm.keywords) == sorted(persona_lm.keywords)
