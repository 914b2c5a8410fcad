"""Turn-taking baseline: rules over voice activity, silence length and the words heard so far.

This is the floor policy the duplex model (a learned model over both audio streams) replaces; it is
kept small and explicit so its behaviour can be read and measured. Every 200 ms it sees what the
player is doing and whether the NPC is speaking, and answers with one action.

- Listening: the player's turn ends after a silence whose required length depends on how sure the NPC
  is that it heard a whole request. A complete sentence that plainly asks for one of the persona's
  topics ("can you fix my sword?"), or a question that fits one topic plainly better than any other
  (``clear_request``), is answered after a human gap, ``sure_silence_s``; one that fits a topic middling
  well after ``end_silence_s``. "I would like to buy" ends on a word that needs more,
  and words that fit nothing the persona knows (a fragment, a mishearing, someone thinking aloud)
  would only get "say that again": for both the NPC waits ``incomplete_silence_s`` before it believes
  the turn is over. So it does when the fit is middling and the streaming words end unfinished: the
  two recognisers disagree, and Whisper, hearing a fragment, may write a sentence ("I would like to
  buy" as "I would like to bye."). Without the accurate words (late, or turned off under load) the
  streaming words decide alone: ``end_silence_s``, or ``unsure_silence_s`` if they end unfinished.
- Projecting: the turn may be answered in the very chunk in which the player's voice ends, before the
  voice-activity model has heard any silence, when everything agrees that it is over: the voice has been
  quiet for ``project_min_gap_s`` (by its loudness), the last accurate read misses at most
  ``project_unread_s`` of it (``project_stale_s`` if it fits ``sure_fit`` well and the streaming words,
  which heard the rest, end finished too) and is a clear request whose words end finished (as for the human
  gap, the streaming words' misheard last word does not veto it when the read is recent), and the prosody
  model (``model/endpoint.py``) hears a complete turn (a final fall, not the level pitch of a comma) — or,
  when it is not sure either way, the voice has been quiet ``project_quiet_s`` by its loudness; when it is
  sure the player only paused, once the voice has been quiet ``projected_gap_s``, a human gap. The answer
  then starts ``projected_gap_s`` after the voice ended, inside the next chunk, not at a chunk boundary. If
  the player's voice comes back before the answer's first sound can have reached them and goes on (not the
  release burst of a last stop, "gate|t"), the NPC yields (the session's business).
- Speaking: a short stretch of speech ("uh-huh", "yeah", "I see") is a backchannel: keep talking.
  Speech that begins as the NPC's answer begins and whose accurate read says more than a backchannel is
  the player going on with their turn after a pause the NPC took for its end: the NPC yields to it.
  Speech that opens with an interruption cue ("wait", "stop", "hold on", "sorry") or that goes on
  longer than a backchannel usually does is an interruption: stop at once. The two kinds of evidence
  are weighed so: the cue word (semantic, from the fast streaming words or the stretch's accurate read)
  stops the NPC early; length (acoustic) stops it otherwise, unless the accurate read of the stretch
  says it was only a backchannel said slowly ("mmm-hmmm"), which may then run up to
  ``backchannel_hold_max_s``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

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


class Action(enum.Enum):
    """What the NPC does in this chunk."""

    LISTEN = "listen"  # keep listening (player may be talking or silent)
    RESPOND = "respond"  # the player's turn is over: start the answer now
    CONTINUE = "continue"  # keep talking (nothing, or a backchannel, was heard)
    BACKCHANNEL = "backchannel"  # speech over the NPC ended without taking the floor ("uh-huh"): keep talking
    INTERRUPTED = "interrupted"  # the player took the floor: stop talking now


@dataclass(frozen=True, kw_only=True)
class FloorObservation:
    """What the policy sees in one chunk."""

    npc_speaking: bool
    in_speech: bool  # the player is speaking at the end of this chunk
    speech_s: float  # length of the player's current stretch of speech (or the last one)
    silence_s: float  # silence since the player's last speech (0 while speaking)
    turn_speech_s: float  # voiced time in the player's current turn so far
    words: str  # best transcript of the current turn so far
    partial: str = ""  # the streaming (fast, often misheard) transcript of the same turn
    fit: float | None = None  # how well the accurate words fit the persona's best topic (cosine), if known
    margin: float | None = None  # how far that fit stands above the next topic's
    stretch_words: str | None = None  # the accurate read of the player's speech over the NPC, once ready
    # That read is the NPC's own words of the last seconds: its voice leaking back, not the player.
    stretch_is_echo: bool = False
    stretch_read_pending: bool = False  # a newer read of the stretch is on its way
    voice_gap_s: float | None = None  # quiet since the player's voice ended by its loudness (None: not ended)
    unread_s: float | None = None  # voice after the end of the audio ``words`` were read from
    p_end: float | None = None  # the prosody model's P(the turn is complete) where the voice ended
    # The duplex model's highest P(the player, not the NPC's echo or noise, speaks) over the chunks of the
    # stretch over the NPC (None: no model loaded).
    stretch_player_p: float | None = None
    # The stretch began as the NPC's answer began: the player was going on with their turn ("I'm looking
    # for the castle gate. | Where is it?"), not answering the NPC.
    stretch_at_onset: bool = False


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


def heard_cue(obs: FloorObservation) -> bool:
    """A cut-in word in the speech over the NPC: in the streaming words, or in the stretch's accurate read
    (pocketsphinx often hears a lone "Wait!" as "where" or "when"; Whisper reads it right), unless that
    read is the NPC's own voice leaking back. The other way round, pocketsphinx sometimes adds a cue word to
    a backchannel's tail ("okay wait" for "Okay."): when the accurate read, with none newer on its way, says
    the stretch was only a backchannel, the streaming words' cue does not count."""
    read = obs.stretch_words
    if read is not None and not obs.stretch_is_echo:
        if has_interrupt_cue(read):
            return True
        if is_backchannel(read) and not obs.stretch_read_pending:
            return False
    return has_interrupt_cue(obs.words)


@dataclass(kw_only=True)
class BaselineTurnPolicy:
    """Rule-based floor control; thresholds are seconds, ``sure_fit``/``unsure_fit`` cosine similarities."""

    # The voice-activity model hears the voice stop 30-130 ms late, so 0.14 s of its silence is a human
    # gap of about 0.2 s; less would answer inside the short pause of a comma ("My sword is broken, |
    # can you fix it?"), where a complete sentence that fits a topic well has been said too.
    sure_silence_s: float = 0.14
    end_silence_s: float = 0.35
    incomplete_silence_s: float = 1.2
    unsure_silence_s: float = 0.8
    min_turn_speech_s: float = 0.25
    backchannel_max_s: float = 0.7
    backchannel_hold_max_s: float = 1.5  # a stretch read as a backchannel may run this long
    read_grace_s: float = 0.25  # past backchannel_max_s, wait this long for the stretch's accurate read
    cue_min_s: float = 0.2
    # Speech over the NPC counts as the player only if the duplex model hears them in some chunk of it
    # (its player head: AUC 0.998 on held-out voices with echo); else it is the NPC's own voice leaking
    # past the canceller, or noise. Past ``unheard_max_s`` of speech whose read says something that is
    # not the NPC's words, it is the player whatever the model says (a voice unlike any it learned).
    player_p: float = 0.5
    unheard_max_s: float = 3.0
    projected_gap_s: float = 0.2  # a human gap, from the voice's end to the answer
    # Quiet needed after the voice. A stop's closure ("bro|ken", "gate|t") can be this long: the session
    # does not yield to the release burst that follows it, only to voice that goes on.
    project_min_gap_s: float = 0.04
    project_unread_s: float = 0.3  # about a word: the read may miss the last one if the words end finished
    # A read made well before the voice ended (a busy machine reads a short turn late) may miss up to two
    # words if the streaming words, which heard them, end finished as well ("where is the" | "castle").
    project_stale_s: float = 0.5
    project_p_end: float = 0.5
    # Without the prosody's word, this much quiet by loudness (the voice-activity model may not have
    # heard any of it yet): the answer still starts ``projected_gap_s`` after the voice, and yields if
    # the player goes on before then, as a comma's speaker does.
    project_quiet_s: float = 0.15
    project_hold_p: float = 0.0  # ... unless the prosody is sure the player only paused (a comma's level tune)
    # A fit this close to a topic's examples is a request the persona knows (a fragment Whisper
    # completed seldom fits this well); below ``unsure_fit`` it fits nothing (the NPC would ask again).
    sure_fit: float = 0.7
    unsure_fit: float = 0.5
    # A question (Whisper heard its tune or its form: "?") is a clear request at a lower fit if it fits one
    # topic plainly better than any other: "What are your prices?" (0.66, next 0.42), "Who are you?" (0.63,
    # next 0.37). A question asks for an answer; a fragment Whisper completed is mostly a statement ("I would
    # like to bye.") and an unfinished question ends where ``looks_incomplete`` holds it ("How much would you
    # want? | For that longsword?").
    question_fit: float = 0.6
    question_margin: float = 0.2

    @classmethod
    def for_patience(cls, patience: float) -> BaselineTurnPolicy:
        """The rules for a persona's temperament: patience 0.5 is the neutral listener. A patient NPC
        (the herbalist) waits a little longer before it answers and yields to shorter speech over it;
        an impatient one (the guard) answers sooner, yields only to longer speech and ignores a cue
        word alone below patience 0.3: the player must insist."""
        return cls(
            sure_silence_s=round(0.14 * (0.5 + patience), 3),
            projected_gap_s=round(0.2 * (0.5 + patience), 3),
            end_silence_s=round(0.35 * (0.5 + patience), 3),
            backchannel_max_s=round(min(1.5, max(0.4, 0.7 * (1.5 - patience))), 3),
            cue_min_s=0.2 if patience >= 0.3 else float("inf"),
        )

    def decide(self, obs: FloorObservation, accurate: bool = True) -> Action:
        """``accurate``: ``obs.words`` is the accurate transcript. Only then may how the words end hold the
        turn open: the streaming partial's last word is misheard too often to veto an answer."""
        if obs.npc_speaking:
            return self._while_speaking(obs)
        if obs.in_speech or obs.turn_speech_s < self.min_turn_speech_s or not words_of(obs.words):
            return Action.LISTEN
        fit = obs.fit if accurate else None
        unfinished = looks_incomplete(obs.partial or obs.words)  # the streaming words end unfinished
        if not accurate:
            needed = self.unsure_silence_s if unfinished else self.end_silence_s
        elif looks_incomplete(obs.words) or (fit is not None and fit < self.unsure_fit):
            # unfinished words, or words that fit nothing the persona knows (a fragment, a mishearing,
            # someone thinking aloud): the answer would only be "say that again", so there is no hurry
            needed = self.incomplete_silence_s
        elif self.clear_request(obs.words, fit, obs.margin):
            needed = self.sure_silence_s
        elif unfinished:
            # A middling (or unknown) fit and streaming words that end unfinished: Whisper may have made
            # a sentence of a fragment ("I would like to bye.") and the player is still thinking.
            needed = self.incomplete_silence_s
        else:
            # A middling fit of words both recognisers hear finished: most are whole requests in other
            # words than the topic's examples ("Who are you?"), but a fragment Whisper completed can be
            # one too ("I would like to bye." while pocketsphinx hears "...survive"): a longer gap.
            needed = self.end_silence_s
        return Action.RESPOND if obs.silence_s >= needed else Action.LISTEN

    def clear_request(self, words: str, fit: float | None, margin: float | None) -> bool:
        """The accurate ``words`` plainly ask for one of the persona's topics: they fit it ``sure_fit`` well, or
        they are a question that fits it ``question_fit`` well and ``question_margin`` better than any other."""
        if fit is None:
            return False
        question = words.rstrip().endswith("?") and margin is not None and margin >= self.question_margin
        return fit >= self.sure_fit or (question and fit >= self.question_fit)

    def project(self, obs: FloorObservation) -> float | None:
        """Seconds after now at which to start the answer to a turn that has just ended, or None to wait
        for the silence. Only a clear request (``obs.words``: the last accurate read, ``obs.fit`` its fit)
        that the prosody model hears as complete is answered this early."""
        if obs.npc_speaking or None in (obs.voice_gap_s, obs.unread_s, obs.fit):
            return None
        if (obs.turn_speech_s < self.min_turn_speech_s or obs.voice_gap_s < self.project_min_gap_s
                or obs.unread_s > self.project_stale_s or not self.clear_request(obs.words, obs.fit, obs.margin)):
            return None
        if obs.unread_s > self.project_unread_s and (
            obs.fit < self.sure_fit or not words_of(obs.partial) or looks_incomplete(obs.partial)
        ):
            # only a read that plainly fits may be stale: a question at a lower fit, read before its last
            # words ("What are you doing?" | "with prices?"), may be a different request once read whole
            return None
        sounds_over = obs.p_end is not None and obs.p_end >= self.project_p_end
        # Once a human gap has passed, a clear request is answered whatever its tune, as the voice-activity
        # rule does once its silence catches up (it hears the voice stop 30-130 ms late: a chunk later).
        sounds_paused = (obs.p_end is not None and obs.p_end < self.project_hold_p
                         and obs.voice_gap_s < self.projected_gap_s)
        if not sounds_over and (sounds_paused or obs.voice_gap_s < self.project_quiet_s):
            return None
        if not words_of(obs.words) or looks_incomplete(obs.words):
            return None
        return max(0.0, self.projected_gap_s - obs.voice_gap_s)

    def goes_on(self, obs: FloorObservation) -> bool:
        """The player goes on with their turn over the onset of the NPC's answer: the stretch began with the
        answer and its accurate read is two words or more, not a backchannel and not the NPC's own voice."""
        read = obs.stretch_words
        return (obs.stretch_at_onset and read is not None and not obs.stretch_is_echo
                and len(words_of(read)) >= 2 and not is_backchannel(read))

    def heard_player(self, obs: FloorObservation) -> bool:
        """The stretch over the NPC is the player's voice, by the duplex model (True when none is loaded)."""
        return self.hears_player(obs.stretch_player_p)

    def hears_player(self, player_p: float | None) -> bool:
        """``player_p``, the duplex model's highest P(player) over a stretch, says it is the player (or is None:
        no model loaded)."""
        return player_p is None or player_p >= self.player_p

    def _while_speaking(self, obs: FloorObservation) -> Action:
        if obs.in_speech:
            if not self.heard_player(obs):
                read = obs.stretch_words
                said = read is not None and not obs.stretch_is_echo and len(words_of(read)) >= 3
                return Action.INTERRUPTED if said and obs.speech_s >= self.unheard_max_s else Action.CONTINUE
            if obs.speech_s >= self.cue_min_s and heard_cue(obs):
                return Action.INTERRUPTED
            if self.goes_on(obs):
                return Action.INTERRUPTED
            if obs.speech_s > self.backchannel_max_s:
                if obs.stretch_is_echo:
                    return Action.CONTINUE  # the canceller let the NPC's own voice through
                read = obs.stretch_words
                said_little = read is None or len(words_of(read)) < 2
                # a long "mmm-hmmm": so the accurate read says, or, when it says little (a hum is often
                # misread as one odd word), the streaming words do ("m m h m")
                hum = (read is not None and is_backchannel(read)) or (said_little and is_backchannel(obs.words))
                if hum and obs.speech_s <= self.backchannel_hold_max_s:
                    return Action.CONTINUE
                if said_little and (obs.speech_s <= self.backchannel_max_s + self.read_grace_s or (
                        obs.stretch_read_pending and obs.speech_s <= self.backchannel_hold_max_s)):
                    # no read yet, or one word of a hum misread: a moment more, and while a newer read
                    # is coming (under load reads run late) up to the longest backchannel
                    return Action.CONTINUE
                return Action.INTERRUPTED  # words that say something, or still no read in time
            return Action.CONTINUE
        if obs.speech_s > 0 and obs.silence_s > 0:
            # A short stretch just ended while we kept talking. A cut-in word is often recognised only
            # once it is said ("wait!" read as "way" until its end): then it was a cut-in after all.
            if self.heard_player(obs) and ((obs.speech_s >= self.cue_min_s and heard_cue(obs)) or self.goes_on(obs)):
                return Action.INTERRUPTED
            if (obs.stretch_read_pending and self.heard_player(obs)
                    and (obs.stretch_at_onset or obs.speech_s >= self.cue_min_s)):
                # judge it on the read of all of it, a moment later: "Sorry, stop." is often read only whole
                return Action.CONTINUE
            return Action.BACKCHANNEL  # the session reports it only if it was the player
        return Action.CONTINUE
