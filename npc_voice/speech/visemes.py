"""eSpeak NG phoneme mnemonics to mouth shapes, so the game can lip-sync the NPC to its own voice.

The viseme set is the common 15-shape set (the one Oculus/Meta OVRLipSync and many rigs use), so a
game's blend shapes can be keyed on these ids directly:

======  ==========================  ==================
id      mouth                       as in
======  ==========================  ==================
sil     closed, at rest             (silence, pauses)
PP      lips pressed                put, bat, mat
FF      lower lip under teeth       fat, vat
TH      tongue between teeth        think, that
DD      tongue on ridge, jaw ajar   tip, doll
kk      back of tongue up           call, gas, sing
CH      lips rounded forward        chair, join, she
SS      teeth together, spread      sir, zeal
nn      tongue up, slightly open    lot, not
RR      lips slightly rounded       red, butter (US)
aa      jaw wide open               car, cat, cup
E       mid open, spread            bed, bird, about
ih      narrow open, spread         tip, see, yes
oh      open, rounded               toe, thought, lot (UK)
ou      small, rounded              book, boot, we
======  ==========================  ==================

eSpeak reports English phonemes in its own ASCII mnemonics (``'eI``, ``aI@``, ``t#`` ...), with
stress marks in front. Lookup strips the stress marks, tries the exact mnemonic, then ever shorter
prefixes (``aI3`` -> ``aI``, ``l/2`` -> ``l``), so variants added by other English voices still land
on the shape of their base phoneme; anything still unknown gets a neutral half-open shape rather than
an error, because a lip-sync glitch is better than a dropped line.
"""

VISEMES: tuple[str, ...] = (
    "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou",
)
SILENCE = "sil"
# Shapes with the jaw visibly open: what a vowel should look like.
MOUTH_OPEN: frozenset[str] = frozenset({"aa", "E", "ih", "oh", "ou"})
# A phoneme we know nothing about: lips apart, jaw ajar, the least conspicuous shape while talking.
FALLBACK = "DD"

# Stress and syllable marks eSpeak puts in front of (or inside) a phoneme name.
_STRESS_MARKS = "',%="

PHONEME_VISEMES: dict[str, str] = {
    # pauses and breaks
    "_": "sil", "_:": "sil", "_!": "sil", "_|": "sil", "_^_": "sil",
    # bilabials, labiodentals, dentals
    "p": "PP", "b": "PP", "m": "PP",
    "f": "FF", "v": "FF",
    "T": "TH", "D": "TH",
    # alveolar stops and flaps
    "t": "DD", "d": "DD", "t#": "DD", "t2": "DD", "d#": "DD",
    # velars, glottals
    "k": "kk", "g": "kk", "N": "kk", "x": "kk", "h": "kk", "?": "kk",
    # post-alveolars
    "tS": "CH", "dZ": "CH", "S": "CH", "Z": "CH",
    "s": "SS", "z": "SS",
    "n": "nn", "n-": "nn", "l": "nn", "l/": "nn", "@L": "nn",
    "r": "RR", "r-": "RR", "3": "RR",
    # glides; ";" is eSpeak's linking y-glide after i-vowels ("the aim")
    "w": "ou", "j": "ih", ";": "ih",
    # open vowels and diphthongs that start open
    "a": "aa", "a#": "aa", "aa": "aa", "A": "aa", "A:": "aa", "A@": "aa", "V": "aa",
    "aI": "aa", "aI@": "aa", "aU": "aa", "aU@": "aa",
    # mid vowels, schwas
    "e": "E", "E": "E", "e@": "E", "eI": "E", "3:": "E", "@": "E", "@2": "E", "@-": "E",
    # close front vowels
    "i": "ih", "i:": "ih", "I": "ih", "I2": "ih", "I#": "ih", "i@": "ih",
    # rounded back vowels
    "0": "oh", "O": "oh", "O:": "oh", "O@": "oh", "o@": "oh", "oU": "oh", "OI": "oh", "o": "oh",
    "u": "ou", "u:": "ou", "U": "ou", "U@": "ou", "@5": "ou",
}

# Last resort on the first letter of the name, for phonemes of voices we never looked at.
_VOWEL_LETTERS = {"a": "aa", "A": "aa", "V": "aa", "e": "E", "E": "E", "@": "E", "3": "E",
                  "i": "ih", "I": "ih", "y": "ih", "Y": "ih",
                  "o": "oh", "O": "oh", "0": "oh", "u": "ou", "U": "ou", "W": "ou"}


def phoneme_to_viseme(phoneme: str) -> str:
    """The viseme id for one eSpeak phoneme mnemonic (stress marks allowed); never raises."""
    name = "".join(ch for ch in phoneme if ch not in _STRESS_MARKS).strip()
    if not name or name.startswith("_"):
        return SILENCE
    for end in range(len(name), 0, -1):
        viseme = PHONEME_VISEMES.get(name[:end])
        if viseme is not None:
            return viseme
    return _VOWEL_LETTERS.get(name[0], FALLBACK)


# IPA, as Piper's eSpeak phonemiser writes it (one code point per phoneme id; diphthongs come as two:
# a + ɪ). Stress and length marks never reach this table: the shape of the phoneme they mark goes on.
IPA_VISEMES: dict[str, str] = {
    "p": "PP", "b": "PP", "m": "PP", "ɱ": "PP",
    "f": "FF", "v": "FF",
    "θ": "TH", "ð": "TH",
    "t": "DD", "d": "DD", "ɾ": "DD",
    "k": "kk", "ɡ": "kk", "g": "kk", "ŋ": "kk", "h": "kk", "x": "kk", "ʔ": "kk",
    "ʃ": "CH", "ʒ": "CH", "ʧ": "CH", "ʤ": "CH",
    "s": "SS", "z": "SS",
    "n": "nn", "l": "nn", "ɫ": "nn",
    "ɹ": "RR", "r": "RR", "ɚ": "RR", "ɝ": "RR",
    "w": "ou", "j": "ih",
    "a": "aa", "ɑ": "aa", "æ": "aa", "ʌ": "aa", "ɐ": "aa",
    "e": "E", "ɛ": "E", "ə": "E", "ɜ": "E",
    "i": "ih", "ɪ": "ih", "ᵻ": "ih", "y": "ih",
    "o": "oh", "ɔ": "oh", "ɒ": "oh",
    "u": "ou", "ʊ": "ou",
}


def ipa_to_viseme(phoneme: str) -> str:
    """The viseme id for one IPA phoneme of Piper's phonemiser; never raises (unknown: a half-open mouth)."""
    if not phoneme.strip():
        return SILENCE
    return IPA_VISEMES.get(phoneme, _VOWEL_LETTERS.get(phoneme, FALLBACK))
