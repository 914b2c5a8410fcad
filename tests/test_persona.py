"""Persona files: every validation message, conditions on the game state, and the designer commands."""

from __future__ import annotations

import random
import shutil
import wave
from pathlib import Path

import pytest
from click.testing import CliRunner

from npc_voice.data import builtin_persona_dir
from npc_voice.persona.commands import persona as persona_cli
from npc_voice.persona.loader import EMOTIONS, PersonaError, load_persona

ASSETS = builtin_persona_dir()

GOOD = """\
id: smith
name: Test Smith
voice:
  voice: en-us+m3
temperament:
  patience: 0.4
state:
  quest_stage: [none, started, done]
  reputation: number
  wanted: flag
  player_name: text
knowledge:
  price: forty gold
topics:
  buy:
    examples:
      - I want a sword.
      - Sell me a blade.
    lines:
      - A sword is {price}.
      - text: For you, {player_name}, half price.
        when: {reputation: ">= 50"}
      - text: Quest heroes pay nothing.
        emotion: happy
        when: {quest_stage: done, reputation: ">= 50"}
      - variants:
          - Go away, thief.
          - No swords for criminals.
        emotion: angry
        when: {wanted: true}
    follow_ups: [fallback]
  fallback:
    lines:
      - What?
      - text: Speak up, {player_name}.
barks:
  greeting:
    - text: Ho there!
      when: {quest_stage: [started, done]}
reactions:
  interrupted:
    - Oh, sorry, go on.
"""


def write(tmp_path: Path, text: str, name: str = "smith.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, name: str = "smith.yaml") -> list[str]:
    with pytest.raises(PersonaError) as info:
        load_persona(write(tmp_path, text, name))
    return [str(p) for p in info.value.problems]


def only(tmp_path: Path, old: str, new: str) -> str:
    """The single problem a one-place edit of GOOD introduces."""
    assert old in GOOD
    found = problems(tmp_path, GOOD.replace(old, new, 1))
    assert len(found) == 1, found
    return found[0]


def test_good_file_loads_with_every_section(tmp_path: Path) -> None:
    p = load_persona(write(tmp_path, GOOD))
    assert p.id == "smith" and p.temperament.patience == 0.4
    assert set(p.state) == {"quest_stage", "reputation", "wanted", "player_name"}
    assert p.knowledge == {"price": "forty gold"}
    assert p.topics["buy"].follow_ups == ("fallback",)
    assert p.example_utterances() == ["I want a sword.", "Sell me a blade."]
    assert set(p.barks) == {"greeting"} and set(p.reactions) == {"interrupted"}


def test_unknown_key_names_the_nearest(tmp_path: Path) -> None:
    msg = only(tmp_path, "    examples:\n      - I want", "    exampels:\n      - I want")
    assert msg.startswith(f"{tmp_path / 'smith.yaml'}:16: unknown key 'exampels' in topic 'buy'")
    assert msg.endswith("did you mean 'examples'?")
    msg = only(tmp_path, "knowledge:", "backstory: long ago\nknowledge:")
    assert "unknown key 'backstory' in the persona — valid keys here: id, name" in msg


def test_missing_fields(tmp_path: Path) -> None:
    assert "the persona has no 'id' — add 'id: ...'" in only(tmp_path, "id: smith\n", "")
    found = problems(
        tmp_path, GOOD.replace("  fallback:\n    lines:\n      - What?\n      - text: Speak up, {player_name}.\n", "")
    )
    assert any("there is no 'fallback' topic — add one" in m for m in found)
    assert any("follow-up 'fallback' of topic 'buy' is not a topic — use one of buy" in m for m in found)
    msg = only(tmp_path, "    examples:\n      - I want a sword.\n      - Sell me a blade.\n", "")
    assert ":15: topic 'buy' has no 'examples' — add 'examples:'" in msg
    assert "has no 'topics' section" in problems(tmp_path, "id: smith\n")[0]


def test_wrong_types_and_ranges(tmp_path: Path) -> None:
    msg = only(tmp_path, "patience: 0.4", "patience: high")
    assert ":6: 'patience' in temperament should be a number from 0 to 1, but is text ('high')" in msg
    assert "outside 0..1 — use a number from 0 to 1" in only(tmp_path, "patience: 0.4", "patience: 1.5")
    msg = only(tmp_path, "voice:\n  voice: en-us+m3\n", "voice: [loud]\n")
    assert "'voice' in the persona should be a mapping of keys, but is a list" in msg
    found = problems(tmp_path, GOOD.replace("  buy:\n", "  yes:\n"))
    assert any("topic id was read as yes/no (True) — put the topic id in quotes" in m for m in found)


def test_empty_lines_and_examples(tmp_path: Path) -> None:
    msg = only(tmp_path, "      - A sword is {price}.\n", "      -\n")
    line = GOOD[: GOOD.index("      - A sword is")].count("\n") + 1
    assert f":{line}: a line in topic 'buy' is empty — write the words after the '- '" in msg
    msg = only(tmp_path, "      - Sell me a blade.\n", "      - Sell me a blade.\n      - ''\n")
    assert "item 3 of 'examples' in topic 'buy' is empty" in msg


def test_conditions_naming_unknown_state(tmp_path: Path) -> None:
    msg = only(tmp_path, "when: {quest_stage: done,", "when: {quest_stag: done,")
    assert "tests 'quest_stag', which is not declared under 'state:' — did you mean 'quest_stage'?" in msg
    msg = only(tmp_path, "when: {quest_stage: done,", "when: {quest_stage: dne,")
    assert "wants quest_stage = 'dne', which is not one of its values — did you mean 'done'?" in msg
    msg = only(tmp_path, 'when: {reputation: ">= 50"}\n', 'when: {reputation: "at least 50"}\n')
    assert "is not a comparison — write one of <, <=" in msg
    assert "'wanted' is a flag" in only(tmp_path, "when: {wanted: true}", "when: {wanted: maybe}")
    found = problems(tmp_path, GOOD.replace("  wanted: flag", "  wanted: flagg"))
    assert any(":10: state key 'wanted' has type text ('flagg') — did you mean 'flag'?" in m for m in found)


def test_other_validation_messages(tmp_path: Path) -> None:
    assert "unknown emotion 'angy'" in only(tmp_path, "emotion: angry", "emotion: angy")
    assert "did you mean 'angry'?" in only(tmp_path, "emotion: angry", "emotion: angy")
    msg = only(tmp_path, "A sword is {price}.", "A sword is {prise}.")
    assert "says {prise}, which is neither knowledge nor a state key — did you mean 'price'?" in msg
    msg = only(tmp_path, "follow_ups: [fallback]", "follow_ups: [fallbak]")
    assert "follow-up 'fallbak' of topic 'buy' is not a topic — did you mean 'fallback'?" in msg
    msg = only(tmp_path, "  price: forty gold\n", "  price: forty gold\n  price: fifty gold\n")
    assert ":14: 'price' appears twice in knowledge (first at line 13) — the second one silently replaces" in msg
    dup = GOOD.replace("      - What?\n", "      - What?\n").replace(
        "  fallback:\n    lines:",
        "  other:\n    examples: [I want a sword!, Hello]\n    lines: [Hi]\n  fallback:\n    lines:",
    )
    assert any(
        "example 'I want a sword!' of topic 'other' is also an example of 'buy'" in m for m in problems(tmp_path, dup)
    )
    msg = only(tmp_path, "      - I want a sword.\n      - Sell me a blade.\n", "      - I want a sword.\n")
    assert "topic 'buy' has only one example — give at least two" in msg
    msg = only(
        tmp_path,
        "      - What?\n      - text: Speak up, {player_name}.\n",
        "      - text: What?\n        when: {wanted: true}\n",
    )
    assert "every fallback line has a condition" in msg
    assert "differs from the file name 'other.yaml'" in problems(tmp_path, GOOD, "other.yaml")[0]


def test_file_level_problems(tmp_path: Path) -> None:
    (tmp_path / "smith.yaml").write_bytes(GOOD.encode().replace(b"Test Smith", b"Test \xff Smith"))
    with pytest.raises(PersonaError) as info:
        load_persona(tmp_path / "smith.yaml")
    assert f":2: byte {GOOD.index('Test Smith') + 5} (0xff) is not UTF-8 text — save the file as UTF-8" in str(
        info.value
    )
    msg = problems(tmp_path, GOOD.replace("  patience: 0.4", "  patience: [0.4"))[0]
    assert "not valid YAML" in msg and "check the indentation" in msg
    big = tmp_path / "big.yaml"
    big.write_text("#" * 1_000_001)
    with pytest.raises(PersonaError, match="over the 1000000 byte limit"):
        load_persona(big)
    assert "not a persona" in problems(tmp_path, "- just\n- a list\n")[0]
    several = problems(tmp_path, GOOD.replace("patience: 0.4", "patience: 9").replace("exampl", "exampel", 1))
    assert len(several) >= 2  # every problem at once, not the first only


def test_conditions_on_game_state(tmp_path: Path) -> None:
    p = load_persona(write(tmp_path, GOOD))
    rng = random.Random(0)

    def says(state: dict) -> set[str]:
        return {p.choose_line("buy", state, rng).text for _ in range(40)}

    assert says({}) == {"A sword is forty gold."}
    assert says({"reputation": 60, "player_name": "Ada"}) == {"For you, Ada, half price."}
    assert says({"reputation": 60, "quest_stage": "done", "player_name": "Ada"}) == {"Quest heroes pay nothing."}
    assert says({"reputation": 10, "quest_stage": "done"}) == {"A sword is forty gold."}
    assert says({"reputation": 60}) == {"A sword is forty gold."}  # the line needs {player_name}
    assert says({"wanted": True}) == {"Go away, thief.", "No swords for criminals."}
    assert says({"wanted": "yes"}) == {"A sword is forty gold."}  # a flag is true or false, not text
    assert p.choose_line("buy", {"wanted": True}, rng).emotion == "angry"
    assert p.choose_line("unknown_topic", {}, rng).text == "What?"
    assert p.choose_line("fallback", {"player_name": "Bo"}, random.Random(3)).text in {"What?", "Speak up, Bo."}
    assert p.bark("greeting", {}, rng) is None
    assert p.bark("greeting", {"quest_stage": "Started"}, rng).text == "Ho there!"
    assert p.reaction("interrupted", {}, rng).text == "Oh, sorry, go on."
    assert p.prefer_follow_ups({"buy": 0.5, "fallback": 0.49}, "buy")["fallback"] > 0.5


def test_emotion_tags_match_the_feelings_model() -> None:
    from npc_voice.model.emotion import PAD

    assert set(EMOTIONS) == set(PAD) | {"neutral"}


def test_shipped_personas_keep_the_bench_contract() -> None:
    p = load_persona(ASSETS / "blacksmith.yaml")
    contract = {
        "greeting",
        "farewell",
        "about_self",
        "buy_sword",
        "buy_shield",
        "prices",
        "repair",
        "directions",
        "dragon_story",
        "forge_story",
        "fallback",
    }
    assert contract <= set(p.topics)
    for tid in contract:  # every bench topic answers with no game state at all
        assert p.choose_line(tid, {}, random.Random(0)).text
    herbalist, guard = load_persona(ASSETS / "herbalist.yaml"), load_persona(ASSETS / "guard.yaml")
    assert herbalist.temperament.patience > p.temperament.patience > guard.temperament.patience
    assert herbalist.temperament.backchannel_rate > p.temperament.backchannel_rate > guard.temperament.backchannel_rate


def test_check_is_clean_on_shipped_personas_and_catches_a_planted_ambiguity(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(persona_cli, ["check", *map(str, sorted(ASSETS.glob("*.yaml")))])
    assert result.exit_code == 0, result.output
    assert result.output.count(": ok (") == 3
    planted = tmp_path / "blacksmith.yaml"
    text = (ASSETS / "blacksmith.yaml").read_text()
    anchor = "      - I'm looking for a shield.\n"
    planted.write_text(text.replace(anchor, anchor + "      - I would like to purchase a good sword.\n"))
    result = runner.invoke(persona_cli, ["check", str(planted)])
    assert result.exit_code == 1
    line = next(ln for ln in result.output.splitlines() if "ambiguous: example 'I would like to purchase" in ln)
    assert "'I would like to purchase a good sword.' of topic 'buy_shield' is matched to topic 'buy_sword'" in line
    assert line.startswith(f"{planted}:{text[: text.index(anchor) + len(anchor)].count(chr(10)) + 1}:")


def test_check_reports_a_voice_espeak_cannot_use(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("en-us+m3", "en-us+m33"))
    result = CliRunner().invoke(persona_cli, ["check", "--no-ambiguity", str(path)])
    assert result.exit_code == 1 and "voice 'en-us+m33' cannot be used" in result.output


def test_say_writes_the_line_in_the_persona_voice(tmp_path: Path) -> None:
    out = tmp_path / "line.wav"
    result = CliRunner().invoke(
        persona_cli, ["say", str(ASSETS / "guard.yaml"), "enter_city", "-s", "alarm=true", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "(angry): Nobody goes in while the bells are ringing. Stand back!" in result.output
    with wave.open(str(out)) as w:
        assert w.getframerate() == 16000 and w.getnframes() > 16000
    result = CliRunner().invoke(persona_cli, ["say", str(ASSETS / "guard.yaml"), "enter_citty"])
    assert result.exit_code != 0 and "did you mean 'enter_city'?" in result.output


def test_chat_shows_topic_confidence_emotion_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "blacksmith.yaml"
    shutil.copy(ASSETS / "blacksmith.yaml", path)
    result = CliRunner().invoke(
        persona_cli,
        ["chat", str(path), "--seed", "1"],
        input="I'd like to buy a sword.\n/state quest_stage=dragon_slain\nI'd like to buy a sword.\n/quit\n",
    )
    assert result.exit_code == 0, result.output
    assert "[topic buy_sword, confidence 1.00" in result.output and "NPC feels" in result.output
    assert "the longsword is yours at cost" in result.output
