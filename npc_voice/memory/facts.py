"""Facts the player states about themselves, read from the words of their turn: today their name.

"My name is Aria", "call me Aria", "the name's Aria" say a name whatever follows them; "I'm Aria" / "I am Aria" only
when the word is written as a name (the accurate reader, Whisper, capitalises names and not "I'm
sorry" or "I'm looking for...") and is not one of the capitalised words that follow "I'm" without being a
name ("I'm English", "I'm Okay"). A wrong name is worse than none: the NPC would call the player by it from then
on, so anything doubtful is left out.
"""

from __future__ import annotations

import re

_NAME = r"([A-Za-z][a-z'’-]+(?:\s+[A-Z][a-z'’-]+)?)"
# Say a name whatever the case of the next word ("my name is aria" from the streaming words).
_SURE = re.compile(
    r"\b(?:my\s+name\s+is|my\s+name's|name's|the\s+name\s+is|call\s+me|they\s+call\s+me|people\s+call\s+me)\s+"
    + _NAME,
    re.IGNORECASE,
)
# Say a name only when it is written as one, and the clause ends after it ("I'm Aria, and I need a sword").
_SOFT = re.compile(r"\b(?:[Ii]'m|[Ii]\s+am)\s+([A-Z][a-z'’-]+(?:\s+[A-Z][a-z'’-]+)?)"
                   r"(?=\s*(?:$|[,.!?;]|\band\b|\bfrom\b|\bby\b|\bof\b))")
# Words that follow "I'm", "my name is", "call me" without being a name.
NOT_NAMES = frozenset([
    "a", "an", "the", "not", "no", "just", "only", "so", "very", "really", "here", "there", "back", "home", "new",
    "lost", "fine", "good", "ok", "okay", "sorry", "sure", "glad", "happy", "sad", "tired", "hungry", "ready",
    "looking", "trying", "going", "coming", "leaving", "asking", "wondering", "interested", "afraid", "scared",
    "english", "french", "german", "spanish", "italian", "dutch", "welsh", "scottish", "irish", "elven", "dwarven",
    "human", "sir", "madam", "mister", "miss", "lady", "lord", "friend", "stranger", "traveller", "traveler",
    "adventurer", "hero", "nobody", "somebody", "someone", "anyone", "nothing", "unknown", "what", "who", "why",
    "how", "when", "where", "yes", "yeah", "well", "hello", "hi", "hey", "thanks", "thank", "please", "it", "that",
    "this", "you", "me", "him", "her", "them", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
    "sunday", "god",
])


def _name(raw: str) -> str | None:
    words = raw.split()
    kept: list[str] = []
    for word in words:
        if word.lower().strip("'’-") in NOT_NAMES:
            break
        kept.append(word.strip("'’-"))
    if not kept or len(kept[0]) < 2:
        return None
    return " ".join(w[:1].upper() + w[1:] for w in kept)


def stated_facts(words: str) -> dict[str, str]:
    """The facts the player states in ``words`` (``{"player_name": "Aria"}``), or nothing."""
    for pattern in (_SURE, _SOFT):
        m = pattern.search(words)
        if m:
            name = _name(m.group(1))
            if name:
                return {"player_name": name}
    return {}
