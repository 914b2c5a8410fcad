"""Speech out: eSpeak NG through ctypes gives 16 kHz audio whose words, visemes and voice settings hold up."""

import dataclasses
import threading
import wave

import numpy as np
import pytest

from npc_voice.audio.format import SAMPLE_RATE
from npc_voice.speech.tts import Synthesizer, Utterance, VoiceSettings, split_sentences, write_wav
from npc_voice.speech.visemes import MOUTH_OPEN, PHONEME_VISEMES, SILENCE, VISEMES, phoneme_to_viseme

LINE = "Well, traveller, the old bridge north of the village washed away in last spring's flood."


@pytest.fixture(scope="module")
def synth() -> Synthesizer:
    return Synthesizer()


def spoken_words(text: str) -> list[str]:
    """The text's words as a subtitle shows them: whitespace tokens as written (punctuation and capitals kept),
    but for tokens of punctuation only."""
    return [token for token in text.split() if token.strip(".,;:!?\"'()“”‘’—-")]


def envelope(audio: np.ndarray, frame: int = 160) -> np.ndarray:
    """RMS per 10 ms frame."""
    x = audio.astype(np.float64)
    n = len(x) // frame
    return np.sqrt((x[: n * frame].reshape(n, frame) ** 2).mean(axis=1))


def similarity(a: np.ndarray, b: np.ndarray, max_lag: int = 6) -> float:
    """Best correlation of two loudness envelopes over shifts of up to `max_lag` 10 ms frames."""
    x, y = envelope(a), envelope(b)
    best = -1.0
    for lag in range(-max_lag, max_lag + 1):
        u, v = (x[lag:], y) if lag >= 0 else (x, y[-lag:])
        n = min(len(u), len(v))
        best = max(best, float(np.corrcoef(u[:n], v[:n])[0, 1]))
    return best


def f0_track(audio: np.ndarray) -> np.ndarray:
    """Pitch (Hz) of each voiced 40 ms frame (20 ms hop), by autocorrelation over 60-400 Hz."""
    x = audio.astype(np.float64) / 32768.0
    frame, lo, hi = 640, SAMPLE_RATE // 400, SAMPLE_RATE // 60
    f0s = []
    for start in range(0, len(x) - frame, frame // 2):
        seg = x[start:start + frame] - x[start:start + frame].mean()
        if np.sqrt((seg**2).mean()) < 0.05:
            continue
        ac = np.correlate(seg, seg, mode="full")[frame - 1:]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.5 * ac[0]:
            f0s.append(SAMPLE_RATE / lag)
    assert len(f0s) >= 5, "too few voiced frames to measure pitch"
    return np.array(f0s)


def median_f0(audio: np.ndarray) -> float:
    return float(np.median(f0_track(audio)))


# ---------------------------------------------------------------- settings


def test_voice_settings_are_frozen_keyword_only_and_validated() -> None:
    settings = VoiceSettings(voice="en-us", pitch=50, rate=175, volume=100, pitch_range=50)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.pitch = 60  # type: ignore[misc]
    with pytest.raises(TypeError):
        VoiceSettings("en-us")  # type: ignore[misc]
    with pytest.raises(ValueError):
        VoiceSettings(pitch=101)
    with pytest.raises(ValueError):
        VoiceSettings(rate=20)


def test_shifted_applies_deltas_and_clamps() -> None:
    base = VoiceSettings(voice="en-us+m3", pitch=90, rate=175, volume=100, pitch_range=50)
    moved = base.shifted(pitch=30, rate=-40, volume=-150, pitch_range=5)
    assert moved == VoiceSettings(voice="en-us+m3", pitch=100, rate=135, volume=0, pitch_range=55)
    assert base.pitch == 90  # the original is untouched
    assert base.shifted(rate=1000).rate == 450
    assert base.shifted() == base


# ---------------------------------------------------------------- audio


def test_audio_is_16k_int16_non_silent_with_plausible_duration(synth: Synthesizer) -> None:
    utterance = synth.synthesize(LINE)
    assert isinstance(utterance, Utterance)
    assert utterance.audio.dtype == np.int16 and utterance.audio.ndim == 1
    assert utterance.duration == pytest.approx(len(utterance.audio) / 16000)
    # 15 words at 175 words/min is about 5 s; eSpeak's pacing and the comma pauses keep it within a factor 2
    expected = len(spoken_words(LINE)) / 175 * 60
    assert expected / 2 < utterance.duration < expected * 2
    peak_dbfs = 20 * np.log10(np.abs(utterance.audio).max() / 32768)
    assert -4.0 < peak_dbfs < -2.0
    assert envelope(utterance.audio).mean() > 300


def test_silence_is_trimmed_so_speech_starts_at_once(synth: Synthesizer) -> None:
    audio = synth.synthesize("Hello there.").audio
    loud = np.flatnonzero(np.abs(audio) > 0.01 * np.abs(audio).max())
    assert loud[0] < 0.03 * SAMPLE_RATE
    assert len(audio) - loud[-1] < 0.08 * SAMPLE_RATE


def test_volume_scales_the_level(synth: Synthesizer) -> None:
    def peak(volume: int) -> float:
        return float(np.abs(synth.synthesize("Bob met Pam.", VoiceSettings(volume=volume)).audio).max())

    assert 20 * np.log10(peak(50) / peak(100)) == pytest.approx(-6.0, abs=0.5)
    assert peak(0) == 0.0
    assert peak(200) > peak(100)


def test_faster_rate_gives_shorter_audio(synth: Synthesizer) -> None:
    slow = synth.synthesize(LINE, VoiceSettings(rate=120)).duration
    fast = synth.synthesize(LINE, VoiceSettings(rate=300)).duration
    assert fast < 0.7 * slow


def test_higher_pitch_gives_higher_f0(synth: Synthesizer) -> None:
    low = median_f0(synth.synthesize(LINE, VoiceSettings(pitch=15)).audio)
    high = median_f0(synth.synthesize(LINE, VoiceSettings(pitch=85)).audio)
    assert high > 1.2 * low


def test_pitch_range_widens_the_melody(synth: Synthesizer) -> None:
    def spread(pitch_range: int) -> float:
        audio = synth.synthesize(LINE, VoiceSettings(pitch_range=pitch_range)).audio
        low, high = np.percentile(f0_track(audio), [10, 90])
        return float(high / low)

    assert spread(0) < 1.05 < spread(50) < spread(100)


def test_variant_changes_the_voice(synth: Synthesizer) -> None:
    plain = median_f0(synth.synthesize(LINE, VoiceSettings(voice="en-us")).audio)
    female = median_f0(synth.synthesize(LINE, VoiceSettings(voice="en-us+f3")).audio)
    assert female > 1.3 * plain


def test_voice_list_and_unknown_voices(synth: Synthesizer) -> None:
    voices = synth.list_voices()
    assert {"en", "en-us", "en-gb"} <= set(voices)
    assert {"m3", "f3"} <= set(synth.list_variants())
    for bad in ("xx-nonsense", "en-us+nonsense", "m3"):
        with pytest.raises(ValueError):
            synth.synthesize("Hello.", VoiceSettings(voice=bad))
    assert synth.synthesize("Hello.", VoiceSettings(voice="en+f3")).duration > 0.2


def test_text_without_words_gives_empty_utterance(synth: Synthesizer) -> None:
    for text in ("", "  ", "..."):
        utterance = synth.synthesize(text)
        assert utterance.duration == 0.0 and utterance.words == []
    assert list(synth.sentences("   ")) == []


# ---------------------------------------------------------------- timing


def check_words(utterance: Utterance) -> None:
    times = [t for t, _ in utterance.words]
    assert [w for _, w in utterance.words] == spoken_words(utterance.text)
    assert times[0] < 0.05
    assert all(a < b for a, b in zip(times, times[1:], strict=False))
    assert times[-1] < utterance.duration - 0.1


def test_word_times_spell_the_text_in_order(synth: Synthesizer) -> None:
    check_words(synth.synthesize(LINE))


def test_word_times_survive_numbers_contractions_and_accents(synth: Synthesizer) -> None:
    text = "I've got 42 apples, don't you? Mr. Smith's café sells crème brûlée for 3.5 coins. Out of it."
    utterance = synth.synthesize(text)
    check_words(utterance)
    assert "42" in dict((w, t) for t, w in utterance.words)  # "forty two" is one subtitle word


def test_word_times_keep_the_punctuation_of_the_line(synth: Synthesizer) -> None:
    """A subtitle shows the line as written; a dash or dots standing alone go with the word before them."""
    text = "Well — I can mend it... tomorrow, perhaps! Or the day after?"
    utterance = synth.synthesize(text)
    words = [w for _, w in utterance.words]
    assert words[:2] == ["Well —", "I"] and "tomorrow," in words and words[-1] == "after?"
    assert " ".join(words) == text
    assert [w for _, w in synth.synthesize("— Aye.").words] == ["— Aye."]


def test_word_times_follow_the_pause(synth: Synthesizer) -> None:
    """After "Wait." eSpeak pauses; the next word must start after that gap, not inside it."""
    utterance = synth.synthesize("Wait. Listen to me.")
    start = dict((w, t) for t, w in utterance.words)["Listen"]
    env = envelope(utterance.audio)
    frame = int(start * 100)
    assert env[frame - 10:frame - 2].max() < 0.05 * env.max()  # silence just before the word
    assert env[frame:frame + 15].max() > 0.3 * env.max()  # and speech right after it


def test_visemes_are_from_the_set_and_open_for_vowels(synth: Synthesizer) -> None:
    utterance = synth.synthesize("Bob, father saw my blue boat at sea.")
    ids = [v for _, v in utterance.visemes]
    times = [t for t, _ in utterance.visemes]
    assert set(ids) <= set(VISEMES)
    assert times[0] == 0.0 and all(a < b for a, b in zip(times, times[1:], strict=False))
    assert times[-1] <= utterance.duration and ids[-1] == SILENCE
    assert all(a != b for a, b in zip(ids, ids[1:], strict=False))  # repeats merged
    assert {"aa", "oh", "ou", "ih"} <= set(ids)
    assert {"PP", "FF", "TH", "SS"} <= set(ids)
    assert sum(v in MOUTH_OPEN for v in ids) >= 8


def test_phoneme_mapping_handles_stress_variants_and_unknowns() -> None:
    assert set(PHONEME_VISEMES.values()) <= set(VISEMES)
    assert phoneme_to_viseme("'eI") == "E"
    assert phoneme_to_viseme(",aU") == "aa"
    assert phoneme_to_viseme("aI3") == "aa"  # prefix of a known diphthong
    assert phoneme_to_viseme("l/2") == "nn"
    assert phoneme_to_viseme("_:") == SILENCE
    assert phoneme_to_viseme("") == SILENCE
    assert phoneme_to_viseme("u\"") == "ou"  # unknown vowel, by its first letter
    assert phoneme_to_viseme("#$") in VISEMES


# ---------------------------------------------------------------- sentences


def test_split_sentences_respects_abbreviations_and_numbers() -> None:
    text = 'Mr. Smith paid 3.5 crowns. "Robbery!" he said. Was it? Yes.\n\nNext'
    expected = ["Mr. Smith paid 3.5 crowns.", '"Robbery!"', "he said.", "Was it?", "Yes.", "Next"]
    assert split_sentences(text) == expected


def test_sentences_yields_one_utterance_per_sentence(synth: Synthesizer) -> None:
    text = "The gate is shut. Come back at dawn! Will you remember that?"
    utterances = list(synth.sentences(text))
    assert [u.text for u in utterances] == split_sentences(text)
    assert len(utterances) == 3
    for utterance in utterances:
        check_words(utterance)
    # all but the last end in a pause, so the pieces can be played back to back
    assert not utterances[0].audio[-int(0.2 * SAMPLE_RATE):].any()
    assert utterances[-1].audio[-int(0.1 * SAMPLE_RATE):].any()
    whole = synth.synthesize(text)
    assert sum(u.duration for u in utterances) == pytest.approx(whole.duration, rel=0.2)


def test_sentences_is_lazy(synth: Synthesizer) -> None:
    stream = synth.sentences("First part. Second part. " + "More words. " * 50)
    first = next(stream)
    assert first.text == "First part."
    stream.close()


# ---------------------------------------------------------------- threads and files


ROUNDS = 8


def test_concurrent_calls_give_uncorrupted_results(synth: Synthesizer) -> None:
    jobs = [("The blacksmith needs iron ore from the northern mines.",
             VoiceSettings(voice="en-us+m3", rate=150)),
            ("Quick, hide behind the barrels before the guards see us!",
             VoiceSettings(voice="en+f3", pitch=70))]
    assert similarity(synth.synthesize(jobs[0][0]).audio, synth.synthesize(jobs[1][0]).audio) < 0.5
    reference = [synth.synthesize(text, voice) for text, voice in jobs]
    results: dict[int, list[Utterance]] = {0: [], 1: []}
    start = threading.Barrier(2)

    def worker(k: int) -> None:
        text, voice = jobs[k]
        start.wait()
        for _ in range(ROUNDS):
            results[k].append(Synthesizer().synthesize(text, voice))

    threads = [threading.Thread(target=worker, args=(k,)) for k in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for k, ref in enumerate(reference):
        assert len(results[k]) == ROUNDS
        for got in results[k]:
            assert [w for _, w in got.words] == [w for _, w in ref.words]
            assert [v for _, v in got.visemes] == [v for _, v in ref.visemes]
            # eSpeak's timing drifts by a few tens of ms with what it spoke before; corruption is far worse
            assert got.duration == pytest.approx(ref.duration, abs=0.06)
            assert np.allclose([t for t, _ in got.words], [t for t, _ in ref.words], atol=0.06)
            assert similarity(got.audio, ref.audio) > 0.9


def test_write_wav_round_trips(synth: Synthesizer, tmp_path) -> None:
    audio = synth.synthesize("Hello.").audio
    path = tmp_path / "hello.wav"
    write_wav(path, audio)
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, SAMPLE_RATE)
        assert np.array_equal(np.frombuffer(wav.readframes(wav.getnframes()), np.int16), audio)
