"""The topic bench: held-out wordings matched with the persona's own matcher, fragments' fits reported."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from npc_voice.bench.cases import PHRASES, SPLITS
from npc_voice.bench.topics import held_out_texts, run_topics
from npc_voice.cli import main
from npc_voice.data import builtin_persona_dir

BLACKSMITH = builtin_persona_dir() / "blacksmith.yaml"


def test_no_held_out_text_is_a_persona_example() -> None:
    """The bench measures generalisation only if the persona does not already hold its texts."""
    data = yaml.safe_load(BLACKSMITH.read_text())
    examples = {e.lower().strip(" .?!") for t in data["topics"].values() for e in t.get("examples", [])}
    texts = [text for texts in held_out_texts().values() for text, _ in texts] + [h for h, _, _ in SPLITS]
    assert not [t for t in texts if t.lower().strip(" .?!") in examples]


def test_shipped_blacksmith_understands_held_out_wordings() -> None:
    summary = run_topics(BLACKSMITH).summary()
    assert summary["wordings_accuracy"] >= 0.9
    assert summary["off_topic_accuracy"] >= 0.9
    assert summary["fragments"] == len(SPLITS)
    assert summary["fragments_at_sure_fit"] == 0  # an unfinished half would be answered as the voice stops
    # first sentences of two-sentence turns that are sure requests by themselves: only "I'm trying to find the
    # castle gate." and "I heard rumours about a dragon."; more would be answered between the player's sentences
    assert summary["preambles"] >= 5 and summary["preambles_at_sure_fit"] <= 2


def test_a_topic_stripped_to_two_examples_loses_its_wordings(tmp_path: Path) -> None:
    """The figure follows the persona: fewer examples of farewell, fewer farewells understood."""
    data = yaml.safe_load(BLACKSMITH.read_text())
    data["topics"]["farewell"]["examples"] = ["Farewell.", "Until next time."]
    thin = tmp_path / "blacksmith.yaml"
    thin.write_text(yaml.safe_dump(data, sort_keys=False))

    def farewells(path: Path) -> int:
        return sum(o.right for o in run_topics(path).sets["wordings"] if o.wanted == ["farewell"])

    assert farewells(thin) < farewells(BLACKSMITH) <= len(PHRASES["farewell"])


def test_cli_prints_summary_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "topics.json"
    result = CliRunner().invoke(main, ["bench", "topics", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "wordings_accuracy" in result.output
    data = json.loads(out.read_text())
    assert len(data["sets"]["wordings"]) == sum(len(v) for v in PHRASES.values())
    assert len(data["preambles"]) == data["summary"]["preambles"]
