"""The NPC voices: Piper beside eSpeak NG, one neural voice as two men, emotion you can hear, lines rendered
ahead into a cache that an edit refreshes line by line, and the eSpeak fallback for a missing voice."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from npc_voice.audio.format import SAMPLE_RATE
from npc_voice.data import builtin_persona_dir
from npc_voice.model.emotion import VOICE_LEVELS, NpcFeelings
from npc_voice.persona.loader import PersonaError, load_persona
from npc_voice.speech.ahead import RenderAhead, spoken_texts, voice_levels
from npc_voice.speech.cache import LineCache
from npc_voice.speech.piper import amplitude_visemes
from npc_voice.speech.shape import median_pitch
from npc_voice.speech.tts import Utterance, VoiceSettings
from npc_voice.speech.visemes import MOUTH_OPEN, SILENCE, VISEMES
from npc_voice.speech.voices import Voices

PERSONAS = builtin_persona_dir()
JOE = VoiceSettings(engine="piper", model="en_US-joe-medium", voice="en-us+m3", rate=165)
LINE = "A fine longsword, forty gold. Balanced it myself."


@pytest.fixture(scope="module")
def voices(tmp_path_factory) -> Voices:
    return Voices(LineCache(tmp_path_factory.mktemp("voice-cache")))


def semitones(a_hz: float, b_hz: float) -> float:
    return 12 * np.log2(a_hz / b_hz)


def test_piper_gives_16k_speech_with_words_in_order_and_visemes(voices: Voices) -> None:
    utt = voices.synthesize(LINE, JOE)
    assert utt.audio.dtype == np.int16 and 2.0 < utt.duration < 6.0
    assert np.abs(utt.audio).max() > 10000  # normalised like eSpeak's voice (-3 dBFS)
    assert [w for _, w in utt.words] == ["A", "fine", "longsword,", "forty", "gold.", "Balanced", "it", "myself."]
    times = [t for t, _ in utt.words]
    assert times == sorted(times) and times[-1] < utt.duration
    # the second sentence starts after the pause between them: there is a quiet stretch before "Balanced"
    pause_at = int(times[5] * SAMPLE_RATE)
    before = utt.audio[pause_at - 1600 : pause_at - 160].astype(float)
    assert np.sqrt(np.mean(before**2)) < 0.1 * np.sqrt(np.mean(utt.audio.astype(float) ** 2))
    shapes = [v for _, v in utt.visemes]
    assert set(shapes) <= set(VISEMES) and shapes[0] == SILENCE and shapes[-1] == SILENCE
    assert sum(v in MOUTH_OPEN for v in shapes) >= 8 and "PP" in shapes  # "myself", "Balanced"


def test_a_number_is_one_subtitle_word_at_its_spoken_place(voices: Voices) -> None:
    utt = voices.synthesize("The toll is 42 silver today.", JOE)
    words = [w for _, w in utt.words]
    assert words == ["The", "toll", "is", "42", "silver", "today."]
    start = dict((w, t) for t, w in utt.words)
    assert start["silver"] - start["42"] > 0.4  # "forty two" takes its time


def test_blacksmith_and_guard_share_a_model_but_not_a_voice(voices: Voices) -> None:
    smith, guard = (load_persona(PERSONAS / f"{n}.yaml") for n in ("blacksmith", "guard"))
    assert smith.voice.engine == guard.voice.engine == "piper" and smith.voice.model == guard.voice.model
    text = "Halt. State your business in the city."
    a = voices.render(text, smith.voice.settings())
    b = voices.render(text, guard.voice.settings())
    pitch_gap = semitones(median_pitch(b.audio / 32768, SAMPLE_RATE), median_pitch(a.audio / 32768, SAMPLE_RATE))
    assert pitch_gap > 2.0, pitch_gap
    assert b.duration < 0.9 * a.duration  # the guard is quicker


def test_feelings_move_a_piper_voice_audibly(voices: Voices) -> None:
    smith = load_persona(PERSONAS / "blacksmith.yaml")
    text = "I did not expect to see you here again."
    sad = voices.render(text, smith.voice.settings(VOICE_LEVELS["sad"]))
    surprised = voices.render(text, smith.voice.settings(VOICE_LEVELS["surprised"]))
    gap = semitones(median_pitch(surprised.audio / 32768, SAMPLE_RATE), median_pitch(sad.audio / 32768, SAMPLE_RATE))
    assert gap > 2.0, gap
    assert surprised.duration < 0.93 * sad.duration  # 30 wpm apart (Piper's durations vary run to run)


def test_voice_shift_is_one_of_the_levels() -> None:
    feel = NpcFeelings({"baseline_mood": "content"})
    assert feel.voice_shift() == VOICE_LEVELS[feel.current()[0]]
    feel.update(0.0, line_tags=["angry"] * 4)
    assert feel.current()[0] == "angry" and feel.voice_shift() == VOICE_LEVELS["angry"]


def test_a_missing_piper_voice_falls_back_to_espeak_and_says_so(voices: Voices, caplog) -> None:
    settings = dataclasses.replace(JOE, model="en_GB-nobody-medium")
    with caplog.at_level(logging.WARNING):
        utt = voices.synthesize("Mind the sparks.", settings)
    assert utt.duration > 0.5 and [w for _, w in utt.words] == ["Mind", "the", "sparks."]
    assert "en_GB-nobody-medium" in voices.missing
    assert any("eSpeak NG voice 'en-us+m3' instead" in r.getMessage() for r in caplog.records)
    espeak = voices.synthesize("Mind the sparks.", settings.as_espeak())
    assert abs(utt.duration - espeak.duration) < 0.01 and [w for _, w in espeak.words] == ["Mind", "the", "sparks."]


def test_cache_round_trip_damage_and_clear(tmp_path: Path) -> None:
    cache = LineCache(tmp_path / "lines")
    utt = Utterance(text="Aye.", audio=np.arange(-500, 500, dtype=np.int16),
                    words=[(0.01, "Aye")], visemes=[(0.0, "sil"), (0.01, "aa"), (0.05, "sil")])
    cache.put("ab" + "0" * 62, utt)
    back = cache.get("ab" + "0" * 62)
    assert back is not None and np.array_equal(back.audio, utt.audio)
    assert back.words == utt.words and back.visemes == utt.visemes and back.text == "Aye."
    assert cache.get("cd" + "0" * 62) is None
    path = next((tmp_path / "lines").glob("*/*.line"))
    path.write_bytes(b"garbage")
    assert cache.get("ab" + "0" * 62) is None  # damaged: rendered again, never an exception
    keep = tmp_path / "lines" / "notes.txt"
    keep.write_text("mine")
    cache.put("ef" + "0" * 62, utt)
    assert cache.clear() == 2 and cache.size() == (0, 0) and keep.read_text() == "mine"


PERSONA = """\
id: {pid}
name: Test Smith
voice:
  engine: espeak-ng
  voice: en-us+m3
state:
  time_of_day: [morning, night]
  reputation: number
knowledge:
  sword_price: forty gold
topics:
  buy_sword:
    examples: [I want a sword., Sell me a blade.]
    lines:
      - A fine longsword, {{sword_price}}. Balanced it myself.
      - Good {{time_of_day}} to you. Swords are over there.
      - You have {{reputation}} fame here.
  fallback:
    lines:
      - {fallback}
reactions:
  holds_floor:
    - Let me finish. Then you talk.
"""


def write_persona(folder: Path, fallback: str, pid: str = "tester") -> Path:
    path = folder / f"{pid}.yaml"
    path.write_text(PERSONA.format(pid=pid, fallback=fallback))
    return path


def test_spoken_texts_fill_knowledge_expand_choices_and_skip_free_state(tmp_path: Path) -> None:
    texts = spoken_texts(load_persona(write_persona(tmp_path, "Eh? Say again.")))
    assert "A fine longsword, forty gold." in texts and "Balanced it myself." in texts
    assert "Good morning to you." in texts and "Good night to you." in texts
    assert not any("fame" in t for t in texts)  # {reputation}: known only when said
    assert "Let me finish. Then you talk." in texts  # said over the player in one piece
    assert texts.count("Swords are over there.") == 1


def test_an_edit_renders_only_the_changed_lines_and_drops_the_old(tmp_path: Path) -> None:
    voices = Voices(LineCache(tmp_path / "cache"))
    ahead = RenderAhead(voices)
    path = write_persona(tmp_path, "Eh? Say again.")
    first = ahead.render(load_persona(path))
    levels = len(VOICE_LEVELS)
    assert first.complete and first.levels == levels and first.present == 0
    assert first.rendered == first.texts * levels == voices.cache.size()[0]
    path.write_text(path.read_text().replace("Eh? Say again.", "Eh? Speak up, the forge is loud."))
    second = ahead.render(load_persona(path))
    assert second.rendered == 1 * levels  # "Speak up, the forge is loud." (the "Eh?" sentence is unchanged)
    assert second.present == (second.texts - 1) * levels
    assert second.dropped == 1 * levels  # "Say again." is said by no one now
    assert voices.cache.size()[0] == second.texts * levels
    third = ahead.render(load_persona(path))
    assert third.rendered == 0 and third.dropped == 0
    ahead.close()


def test_a_rendered_line_is_what_the_engine_gets(tmp_path: Path) -> None:
    voices = Voices(LineCache(tmp_path / "cache"))
    persona = load_persona(write_persona(tmp_path, "Eh? Say again."))
    RenderAhead(voices).render(persona)
    level, settings = voice_levels(persona)[0]
    assert level == "neutral"
    key = voices.key("Balanced it myself.", settings)
    assert voices.cache.has(key)
    stored = voices.cache.get(key)
    spoken = voices.synthesize("Balanced it myself.", persona.voice.settings(NpcFeelings(persona.temperament)
                                                                              .voice_shift()))
    assert stored is not None and np.array_equal(spoken.audio, stored.audio) and spoken.words == stored.words


@pytest.mark.parametrize(("voice", "problem"), [
    ("  engine: pipr\n", "unknown voice engine 'pipr' — did you mean 'piper'?"),
    ("  engine: espeak-ng\n  model: en_US-joe-medium\n", "'model' in voice is only used by the Piper engine"),
    ("  engine: piper\n  timbre: 7\n", "'timbre' in voice is 7, outside -4..4"),
    ("  engine: piper\n  model: voices/joe.onnx\n", "Piper voice name 'voices/joe.onnx' is not a file name"),
])
def test_voice_section_problems_have_file_and_line(tmp_path: Path, voice: str, problem: str) -> None:
    path = tmp_path / "tester.yaml"
    path.write_text(PERSONA.format(pid="tester", fallback="Eh?").replace("  engine: espeak-ng\n", voice))
    with pytest.raises(PersonaError) as err:
        load_persona(path)
    assert any(problem in str(p) and p.line is not None and p.line > 3 for p in err.value.problems), err.value


def test_piper_engine_defaults_to_the_packaged_voice(tmp_path: Path) -> None:
    path = tmp_path / "tester.yaml"
    path.write_text(PERSONA.format(pid="tester", fallback="Eh?").replace("engine: espeak-ng", "engine: piper"))
    assert load_persona(path).voice.settings().model == "en_US-joe-medium"


def test_amplitude_lip_sync_opens_with_loudness() -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    tone = (8000 * np.sin(2 * np.pi * 150 * t) * (t > 0.3) * (t < 0.7)).astype(np.int16)
    track = amplitude_visemes(tone)
    assert track[0] == (0.0, SILENCE) and track[-1][1] == SILENCE
    opened = [time for time, v in track if v == "aa"]
    assert opened and 0.25 <= opened[0] <= 0.35


def test_persona_say_speaks_given_words_with_an_emotion(tmp_path: Path) -> None:
    from npc_voice.persona.commands import persona

    out = tmp_path / "line.wav"
    result = CliRunner().invoke(persona, ["say", "guard", "Halt! Who goes there?", "--emotion", "angry",
                                          "--out", str(out)], env={"NPC_VOICE_CACHE": str(tmp_path / "c")})
    assert result.exit_code == 0, result.output
    assert "Sergeant Vorn (angry): Halt! Who goes there?" in result.output
    import wave

    with wave.open(str(out)) as w:
        assert w.getframerate() == SAMPLE_RATE and w.getnframes() > SAMPLE_RATE // 2


def test_an_unwritable_cache_only_means_lines_are_synthesised_when_said(tmp_path: Path, caplog) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    voices = Voices(LineCache(blocked / "lines"))
    persona = load_persona(write_persona(tmp_path, "Eh?"))
    with caplog.at_level(logging.WARNING):
        report = RenderAhead(voices).render(persona)
    assert not report.complete and report.rendered == 0
    assert sum("cannot be written" in r.getMessage() for r in caplog.records) == 1
    assert voices.synthesize("Balanced it myself.", persona.voice.settings()).duration > 0.5


def test_interjections_are_said_not_spelt(voices: Voices) -> None:
    from npc_voice.speech.piper import spoken_form

    assert spoken_form("Hm? Go on.") == "[[hˈəm?]] Go on."
    assert spoken_form("Mm-hm.") == "[[mːhˈmː.]]" and spoken_form("Hmmm, a hammer.") == "Hmmm, a hammer."
    hm = voices.render("Mm-hm.", JOE)
    assert [w for _, w in hm.words] == ["Mm-hm."] and hm.duration < 0.8  # not "em em aitch em"
    utt = voices.render("Hm? Go on.", JOE)
    assert [w for _, w in utt.words] == ["Hm?", "Go", "on."] and utt.duration < 1.5


def test_submit_renders_in_a_process_of_its_own(tmp_path: Path) -> None:
    voices = Voices(LineCache(tmp_path / "cache"))
    ahead = RenderAhead(voices)
    persona = load_persona(write_persona(tmp_path, "Eh? Say again."))
    report = ahead.submit(persona).result(timeout=300)
    assert report.complete and report.rendered == report.texts * len(VOICE_LEVELS)
    assert voices.cache.has(voices.key("Balanced it myself.", voice_levels(persona)[0][1]))
    ahead.close()


def test_lines_with_actions_are_rendered_ahead_and_lines_naming_the_player_are_said_when_known() -> None:
    texts = spoken_texts(load_persona(PERSONAS / "blacksmith.yaml"))
    # a line's actions ride on its words' timing, which a rendered sentence keeps: the offer and the sale are ahead
    assert "A fine longsword, forty gold." in texts and "Here, the longsword is yours." in texts
    assert "As I said, forty gold for the longsword, and worth every coin." in texts  # memory in `when:` only
    assert "You already have one of my longswords." in texts
    # the player's name is known only when the NPC remembers it: those lines are synthesised when said
    assert not any("{" in t or "player_name" in t for t in texts)
    assert not any(t.startswith("Well met,") and "Brom" in t for t in texts)
    assert not any("Good to see you again" in t for t in texts)
