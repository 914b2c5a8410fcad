"""Marks on a line: points to report when the line is played, at a word of it (a line's actions wait on them)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_NOT_WORD = re.compile(r"[^\w']+")


def spoken_word(word: str) -> str:
    """A word as marks and the synthesiser's word timing are compared: lower case, no punctuation."""
    return _NOT_WORD.sub("", word.lower().replace("\u2019", "'")).strip("'")


@dataclass(frozen=True)
class Mark:
    """Report ``payload`` when the line's first word ``word`` (as ``spoken_word`` writes it) starts to play; when
    ``word`` is None, when the line's first word does."""

    word: str | None
    payload: Any
