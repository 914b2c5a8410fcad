"""Persona files are data: YAML tags that would run code are refused, and nothing runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from npc_voice.persona.loader import PersonaError, load_persona


@pytest.mark.parametrize(
    "tag",
    ["!!python/object/apply:os.system", "!!python/object/new:os.system", "!!python/name:os.system"],
)
def test_code_tags_are_refused_and_never_run(tmp_path: Path, tag: str) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "evil.yaml"
    path.write_text(f'id: evil\nname: {tag} ["touch {marker}"]\n')
    with pytest.raises(PersonaError) as info:
        load_persona(path)
    assert "evil.yaml" in str(info.value)
    assert not marker.exists()
