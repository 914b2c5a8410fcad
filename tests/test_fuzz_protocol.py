"""Hypothesis fuzz of the wire decoder: any bytes decode to a message or a known, explained error."""

from __future__ import annotations

import re
from pathlib import Path

from npc_voice.bench.fuzz import fuzz_decoder
from npc_voice.transport import protocol as p


def test_decoder_survives_a_thousand_generated_messages() -> None:
    # 1,000 keeps the suite inside CI's budget (3,000 took 45 s); `python -m npc_voice.bench.fuzz` runs more
    outcomes = fuzz_decoder(1000)
    print(f"decoder fuzz: {sum(outcomes.values())} messages, {dict(outcomes.most_common())}")
    assert sum(outcomes.values()) >= 800  # hypothesis may stop early only on duplicate examples
    # the generator reaches deep: field-level errors and accepted messages, not just garbage
    assert {"malformed", "bad_field", "missing_field"} <= set(outcomes)
    assert any(k.startswith("ok:") for k in outcomes)


def test_every_error_code_is_documented() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "protocol.md").read_text()
    section = doc.split("## Error codes")[1].split("\n## ")[0]
    first_cells = [row.split("|")[1] for row in section.splitlines() if row.startswith("| `")]
    documented = {code for cell in first_cells for code in re.findall(r"`(\w+)`", cell)}
    assert p.ERROR_CODES - documented == set()
