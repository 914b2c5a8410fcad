"""What the words say about the floor: lexical cues read from a transcript (the accurate read or the
streaming words), as the floor rules and the duplex model's features use them.

- ``looks_incomplete``: the words stop where a sentence seldom ends ("I would like to buy").
- ``is_backchannel``: a few words that only keep the speaker going ("uh-huh", "I see").
- ``has_interrupt_cue``: a cut-in opener ("wait", "stop", "hold on", "sorry").
- ``is_own_words``: the words are mostly the NPC's own recent words (its voice leaking back).
- ``finish_cut_word``: a read that stopped inside its last word, finished by the streaming words.
- ``strip_discourse``: the words without openers that ask nothing.
"""

from __future__ import annotations

import re

INTERRUPT_CUES = frozenset(
    ["wait", "stop", "hold", "hang", "sorry", "excuse", "actually", "pardon", "listen"]
)
# Words a sentence rarely ends on: determiners, prepositions, conjunctions, auxiliaries, verbs that
# want an object, subject pronouns. A turn whose words end here is probably paused mid-sentence.
# Object pronouns and demonstratives are not here: "can you fix it?", "from you?", "how much is that?"
INCOMPLETE_ENDINGS = frozenset(
    [
        "a",
        "an",
        "the",
        "my",
        "your",
        "his",
        "her",
        "their",
        "our",
        "its",
        "some",
        "any",
        "every",
        "no",
        "to",
        "of",
        "in",
        "on",
        "at",
        "for",
        "with",
        "from",
        "by",
        "about",
        "into",
        "onto",
        "over",
        "under",
        "than",
        "as",
        "like",
        "and",
        "or",
        "but",
        "so",
        "because",
        "if",
        "when",
        "while",
        "where",
        "which",
        "who",
        "whose",
        "what",
        "how",
        "why",
        "whether",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "am",
        "do",
        "does",
        "did",
        "have",
        "has",
        "had",
        "can",
        "could",
        "will",
        "would",
        "shall",
        "should",
        "may",
        "might",
        "must",
        "buy",
        "get",
        "want",
        "need",
        "sell",
        "make",
        "find",
        "tell",
        "give",
        "show",
        "fix",
        "repair",
        "see",
        "know",
        "go",
        "take",
        "bring",
        "i",
        "we",
        "they",
        "he",
        "she",
        "very",
        "really",
        "just",
        # a filled pause holds the floor: "I'd like to buy, um"
        "um",
        "uh",
        "uhm",
        "er",
        "erm",
    ]
)
_WORD = re.compile(r"[a-z']+")
# Openers that carry no request: "wait, no, that's not what I meant", "hold on", "sorry"...
_DISCOURSE = re.compile(
    r"^(?:(?:wait|stop|hold on|hang on|no|sorry|actually|excuse me|um+|uh+|well|okay|ok|oh|"
    r"that'?s not what i meant|that is not what i meant|not what i meant|never mind|listen)\b[\s,.!]*)+",
    re.IGNORECASE,
)


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def strip_discourse(text: str) -> str:
    """The text without openers that ask nothing ("wait, no, that's not what I meant. How much..." )."""
    return _DISCOURSE.sub("", " ".join(text.split())).strip()


# A question about a place, thing or person may end on its preposition ("Where did it come from?").
_WH_OPENERS = frozenset(["what", "where", "who", "whom", "which", "whose"])
_STRANDED = frozenset(["from", "of", "for", "with", "about", "at", "on", "in"])
# A question asked inside the sentence ends on its verb: "Can you tell me where the castle is?", "Do you know
# how much a shield is?". The wh-word follows the word that asks (not the sentence's start: "What I need most
# is..." goes on), and a subject stands between it and the verb ("tell me where is..." goes on).
_EMBEDDED_WH = frozenset(["where", "what", "who", "which", "whose", "how", "when", "why"])
_ASKING = frozenset(["me", "us", "know", "wonder", "ask", "tell", "show", "explain", "remember", "idea", "sure",
                     "say", "see", "out"])
_CLOSING_VERBS = frozenset(["is", "are", "was", "were", "am"])


def _closes_embedded_question(words: list[str]) -> bool:
    if words[-1] not in _CLOSING_VERBS:
        return False
    return any(words[i] in _EMBEDDED_WH and words[i - 1] in _ASKING for i in range(1, len(words) - 2))


def looks_incomplete(text: str) -> bool:
    """True when the words so far end where a sentence seldom ends (a filled pause too: "...buy, um"), or
    hold nothing but openers, or the accurate read ends them with a comma or trails off (Whisper writes "I
    heard rumours about a dragon," when the voice carries on, as before "What happened?", and "The
    castle..." when it stops mid-thought). A written wh-question that ends on a preposition ("What is it
    made of?") is whole, and so is a question asked inside the sentence ("Can you tell me where the castle
    is?")."""
    written = text.rstrip()
    words, asked, end = words_of(text), strip_discourse(text), written[-1:]
    if not words or not asked or end in ",;:" or written.endswith(("...", "\u2026")):
        return bool(words)
    opener = words_of(asked)[:1]
    stranded = end == "?" and words[-1] in _STRANDED and bool(opener) and opener[0] in _WH_OPENERS
    return words[-1] in INCOMPLETE_ENDINGS and not stranded and not _closes_embedded_question(words)


def finish_cut_word(read: str, streaming: str) -> str | None:
    """The accurate ``read`` of a turn whose audio stopped inside the last word ("Tell me about your four."
    for "...forge", "What happened with the draft?" for "...dragon"), finished by the ``streaming`` words,
    which have heard all of it: where the streaming words repeat the read's words before its last one and
    go on for one or two words, the first of which begins as the read's cut word does (or is that word, when
    the read stopped after it), those words replace the cut one. None when the two do not agree so."""
    read_words, heard = words_of(read), words_of(streaming)
    if len(read_words) < 2:
        return None
    head, cut = read_words[:-1], read_words[-1]
    best: tuple[int, list[str]] | None = None
    for j in range(len(heard)):
        agree = 0
        while agree < len(head) and agree <= j and heard[j - agree] == head[-1 - agree]:
            agree += 1
        tail = heard[j + 1 :]
        begins_as_cut = bool(tail) and (tail[0] == cut or tail[0][:2] == cut[:2])
        if begins_as_cut and len(tail) <= 2 and tail != [cut] and agree > (best[0] if best else 0):
            best = (agree, tail)
    return None if best is None else " ".join(head + best[1])


# What a listener says to keep the speaker going, alone or a few together ("oh, interesting", "fair enough");
# "uh-huh", "mm-hm" are written many ways ("M-M-H-M"). Not "no": it opens corrections ("no, I meant...").
BACKCHANNEL_WORDS = frozenset(
    [
        "yeah", "yes", "yep", "yup", "ok", "okay", "right", "sure", "wow", "oh", "really", "alright", "aha",
        "aye", "indeed", "true", "cool", "gotcha", "got", "it", "i", "see", "go", "on", "know",
        "interesting", "nice", "great", "good", "fine", "exactly", "absolutely", "certainly", "of", "course",
        "fair", "enough", "makes", "sense", "amazing", "gosh", "understood",
        "uhhuh", "mhm", "mmhm", "hmm", "mm", "uh", "huh", "ah",
    ]
)
# "mm", "hmm", "mhm", and a hum read as one word with a trailing vowel ("mma", "mmhma")
_HUM = re.compile(r"^(?:[mh]+a?|u+h+(?:u+h+)*|a+h+|o+h+)$")


_SPELLED = re.compile(r"^\s*[a-z](?:[-\s.]+[a-z])+[\s.!?]*$")


def is_backchannel(text: str) -> bool:
    """True for a few words that only keep the speaker going ("uh-huh", "yeah, right", "I see", "mm").
    Whisper often spells a hum out as letters ("M-M-H-M", "M-L-H-M"): mostly m, h, n, u is a hum."""
    low = text.lower()
    if _SPELLED.match(low):
        letters = re.findall(r"[a-z]", low)
        return sum(ch in "mhnu" for ch in letters) * 2 >= len(letters)
    words = re.findall(r"[a-z]+", re.sub(r"(?<=[a-z])-(?=[a-z])", "", low))
    return 0 < len(words) <= 4 and all(w in BACKCHANNEL_WORDS or _HUM.match(w) for w in words)


def is_own_words(heard: str, said: list[str]) -> bool:
    """True when ``heard`` (two words or more) is mostly words of ``said``, the NPC's own recent words."""
    words, own = words_of(heard), set(words_of(" ".join(said)))
    return len(words) >= 2 and sum(w in own for w in words) >= 0.6 * len(words)


def has_interrupt_cue(text: str) -> bool:
    words = words_of(text)
    return bool(words) and (words[0] in INTERRUPT_CUES or any(w in INTERRUPT_CUES for w in words[:3]))


_NAME_RUN = re.compile(r"(?<![.?!]\s)(?<!^)\b([A-Z][a-z]+(?:\s+[A-Z][a-z]+)*)")


def key_word(text: str) -> str | None:
    """The name the player's words turn on, for a persona to echo ("Cambridge? Never heard of it."): the last
    run of capitalised words that does not open a sentence (Whisper writes names so: "I'm looking for information
    about Cambridge."), or None. Ordinary words are not echoed: "Hair? Never heard of it." would mock the player."""
    names = [m.group(1) for m in _NAME_RUN.finditer(text.strip()) if m.group(1) not in ("I", "I'm")]
    return names[-1] if names else None


_ASKING_OPENERS = frozenset({
    "what", "where", "when", "who", "whom", "whose", "why", "how", "which", "can", "could", "would", "will", "do",
    "does", "did", "is", "are", "was", "were", "have", "has", "may", "might", "shall", "should", "tell"})


def speaks_to_listener(text: str) -> bool:
    """The words ask something, or speak to the listener: a question by its form or Whisper's "?" ("Do you sell
    candles?", "Where can I get my hair cut?"), or "you" in them ("It's good to see you."). Read-aloud or narrated
    words seldom do ("He makes me harshly feel."), and they go on after their pauses."""
    words = words_of(text)
    if not words:
        return False
    return text.rstrip().endswith("?") or words[0] in _ASKING_OPENERS or bool({"you", "your", "you're"} & set(words))
