"""Every threshold of the micro-turn engine and of its floor rules, in one place, each with its why.

Engine stages read ``EngineConfig`` (hearing, reading, the answer's onset, temperament, memory); floor rules read
``FloorConfig`` (listening, speaking, projection) for the default ``rules`` strategy set, ``DuplexConfig``
for the learned one and ``CascadeConfig`` for the pipecat/LiveKit-style baseline. Seconds unless named
otherwise; fits are cosine similarities of the words to a persona topic's examples (MiniLM).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

# ---------------------------------------------------------------------------------------------- engine


@dataclass(frozen=True, kw_only=True)
class HearingConfig:
    """Voice activity into stretches of the player's speech, and where the voice really ended."""

    speech_on: float = 0.5  # silero P(speech) that starts a stretch (its own default threshold)
    speech_off: float = 0.3  # below this a frame is quiet: a gap between the two stops flicker
    hangover_frames: int = 3  # ~100 ms of quiet frames before a stretch ends
    # Output above the expected residual echo by this much (dB) means someone else is talking: a stricter
    # bar to start a stretch of player speech over the NPC than to keep one going.
    echo_excess_start_db: float = 6.0
    echo_excess_hold_db: float = 2.0
    echo_removed_db: float = 3.0  # mic louder than the canceller's output by this: there was echo to remove
    # Where the voice really ended: silero hears it stop 30-130 ms late, so the end is the last 10 ms block
    # of the stretch within ``loud_range_db`` of its loudest (and above ``silence_db``).
    loud_block: int = 160
    loud_range_db: float = 25.0
    silence_db: float = -55.0
    stretch_join_s: float = 0.5  # a stretch this soon after the last is one voice ("Oh, | I see")


@dataclass(frozen=True, kw_only=True)
class ReadingConfig:
    """When the accurate reader (Whisper) reads the turn and the speech over the NPC."""

    predict_after_s: float = 0.4  # a turn is read ahead once it holds this much speech
    fading_frames: int = 2  # a chunk ending this many quiet frames into a stretch starts the whole-turn read
    # A read covers the turn if the voice's end is no later than this after the read's audio.
    cover_slack_s: float = 0.05
    quiet_fade_s: float = 0.08  # this much quiet by loudness and the stretch is fading (silero hears it late)
    # In real time a step whose turn has just ended may wait for the read of all of it (started a chunk ago,
    # when the voice faded) and its first sentence's voice, if due within ``read_wait_s`` of the step's start:
    # the answer then starts inside the next chunk, not a whole chunk later. The NPC is silent then, so the
    # player's jitter buffer only stretches a silence.
    read_wait_s: float = 0.11
    read_time_s: float = 0.2  # a read's expected time until the session has timed its own reads
    cut_word_s: float = 0.03  # a read missing more than this of the voice may have cut its last word
    # A turn whose read fits nothing waits the long silence anyway; once the voice has been quiet this long
    # it is read a second time, with that much more of the quiet ("any pleats for seal?" / "...for sale?").
    read_again_after_s: float = 0.45
    # Speech over the NPC this long is read accurately, again every ``stretch_reread_s`` while it goes on, so
    # the floor can tell a slow "mmm-hmmm" from an interruption; a read older than ``stretch_stale_s`` of
    # speech no longer speaks for the stretch.
    stretch_read_after_s: float = 0.3
    stretch_reread_s: float = 0.2
    stretch_stale_s: float = 0.4
    echo_words_s: float = 2.5  # a read of speech over the NPC is compared with its own words of this long


@dataclass(frozen=True, kw_only=True)
class OnsetConfig:
    """The first moments of an answer: yielding when the player was only pausing."""

    # A projected answer yields if the player's voice comes back before its first sound can have reached
    # their microphone (so it is not the NPC's echo): up to ``yield_slack_s`` after the answer's start. Only
    # voice that lasts ``yield_voice_s`` or is still loud then is the player going on: a shorter sound that
    # falls quiet is the release of the turn's last stop ("gate|t"), whose closure passed for the end.
    yield_slack_s: float = 0.02
    yield_voice_s: float = 0.08
    # A stretch that begins within this of the answer's first sound began before the player can have taken
    # the answer in: they were going on with their turn ("I'm looking for the castle gate. | Where is it?").
    overlap_s: float = 0.4
    max_turn_s: float = 20.0  # a turn longer than this is answered anyway


@dataclass(frozen=True, kw_only=True)
class TemperamentConfig:
    """The persona's temperament at work: idle barks, its own "mm-hm", holding the floor."""

    # A quiet NPC with the player near says an idle bark after this long, from a terse persona
    # (talkativeness 0) to a chatty one (1), varied by a third either way.
    idle_after_s: tuple[float, float] = (40.0, 12.0)
    idle_spread: tuple[float, float] = (0.67, 1.33)
    player_turn_quiet_s: float = 1.5  # the player's turn keeps the floor (no barks) until this much quiet
    # The NPC's own "mm-hm": in a pause of this length of a player who has said this much since the last
    # one and whose words so far need more, with the persona's ``backchannel_rate`` per such pause.
    own_backchannel_after_s: float = 2.5
    own_backchannel_pause_s: tuple[float, float] = (0.15, 0.6)
    hold_floor_min_s: float = 0.2  # a cut-in this long that the NPC does not yield to gets "let me finish"
    greet_base: float = 0.5  # P(greeting) = greet_base + (1 - greet_base) * talkativeness


@dataclass(frozen=True, kw_only=True)
class UnderstandingConfig:
    """What a read of the player's turn means: a topic, a question the persona has no answer to, a toss-up
    between two topics, or words not heard clearly (``floor/evidence.py``'s ``understand``)."""

    # P(heard right) (``model/clarity.py``) from which a read counts as heard clearly. tiny.en on dev and the
    # tuning seed: 0.91 of right reads reach 0.6, and 0.24 of wrong ones (half of those fit a topic anyway).
    clear_p: float = 0.6
    # Below this fit a read fits no topic (MiniLM cosine). Off-topic turns of the tuning decks fit the blacksmith's
    # examples 0.19-0.47 (small talk that sounds like a greeting is the top); requests in new words 0.45 and up
    # ("Tell me how you got started at the anvil." 0.45).
    unknown_fit: float = 0.45
    # A read the recogniser was unsure of is answered by its topic only from this fit (the fit below which the
    # engine always took words to fit nothing): unsure reads fitting 0.5-0.6 are right and wrong alike on the
    # tuning cases ("Gold afternoon, sir." greeting; "can't you labour, smith?" greeting for a farewell).
    unclear_fit: float = 0.5
    # A fit below ``which_fit`` whose runner-up topic is within ``which_margin`` is a toss-up: heard clearly, the
    # NPC asks which ("A sword or a shield, friend?") rather than answer the wrong one. Above it the two topics
    # are mostly both right ("What do you charge for repairs?": prices 0.65, repair 0.64).
    which_fit: float = 0.6
    which_margin: float = 0.03


@dataclass(frozen=True, kw_only=True)
class AddresseeConfig:
    """Is speech addressed to the NPC, or someone else's talk in the room (``floor/evidence.py``'s
    ``not_addressed``)? Figures from the tuning cases (``npc-voice bench cases --seed 7001`` with its tuning decks),
    dev and the real recordings in ``../shared/eval/real``."""

    # Near-field: how fast the voice's energy can fall, the 90th percentile of its 10 ms drops (dB). A room's
    # reverberation fills the gaps after syllables: voices a few metres off or across a hall, and a TV, fall at
    # most 1.8-3.2 dB; the dev and tuning players 4.1 and up (10th percentile), real read speech 5.4-7.7, the
    # real phone call 3.6 and up but for one overlapped turn.
    reverberant_fall_db: float = 3.2
    # ... and it is quiet: under ``distant_level_db`` (loud frames, dBFS), or ``distant_below_player_db`` under the
    # player's answered turns once there are some. A few dry players fall slower than 3.2 too (4 % of the dev and
    # tuning turns), all at -19 to -11 dBFS; the voices across a room or out of a TV came in at -40 to -26.
    distant_level_db: float = -28.0
    distant_below_player_db: float = 6.0
    # ... judged only where the voice stands this far above the room's noise: under game noise 5-15 dB below the
    # voice the noise, not a room, holds the falls up (the tuning cases' players under game noise fall 3.6-4.0).
    fall_snr_db: float = 15.0
    min_speech_s: float = 0.6  # less voice than this says too little about the room (or the voice) to judge
    # Another voice: cosine of the stretch's speaker embedding to the player's profile, from ``voice_speech_s`` of
    # voice. The same synthetic voice in other sentences: 0.70 (5th percentile) to 0.90, but a tuning player's
    # own "How did it start?" after an interruption came in at 0.62; other voices: median 0.55, eSpeak NG's male
    # variants alike at 0.8-0.9. Only a plainly other voice, then: taking the player for someone else is the worse
    # mistake (they are never answered).
    other_voice_similarity: float = 0.5
    voice_speech_s: float = 1.0
    # The profile is the mean embedding of the first turns answered (at most ``profile_turns``) of at least
    # ``profile_speech_s`` of speech; judged only once it holds one.
    profile_turns: int = 3
    profile_speech_s: float = 0.8
    # Far quieter than the player's answered turns (their loud-frame level), and the room blurs it a little: a
    # voice across the room, not the player's.
    quieter_db: float = 10.0
    quieter_fall_db: float = 4.0
    # Blurred and not heard clearly (``listening.blurred_and_unclear``): a voice that falls under
    # ``reverberant_fall_db`` and that the recogniser could not make out is not answered, not even with "say that
    # again", though it is louder or nearer the room's noise than ``distant`` allows. Tuning seed 7002: six of the
    # eight bystander voices the NPC answered ("Pass me the leg, woah hoo.", P 0.39) fell 1.6-3.1 dB at -38 to
    # -25 dBFS; no player turn, on dev or the tuning seeds, fell under 3.2 and was not heard clearly.
    # The slow-falling players are loud (-19 to -11 dBFS); the blurred voices -25 and under ...
    blurred_level_db: float = -22.0
    blurred_below_player_db: float = 3.0  # ... or this far under the player's answered turns (a companion: 3.9)
    # Under game noise (the voice under ``fall_snr_db`` above the room) the noise holds a player's falls up: the
    # tuning players under game noise fell 3.4-4.7 at 10-18 dB; the distant voices there, 1.6 and 2.2.
    noisy_blurred_fall_db: float = 2.5


@dataclass(frozen=True, kw_only=True)
class MemoryConfig:
    """What the NPC remembers of the player (``npc_voice/memory``): when a visit begins, how its regard moves."""

    # Contact after this long apart is a new visit: a player who steps out of earshot and back, or restarts the
    # game, within two minutes is still on the same visit ("visits" counts comings back, not cue flicker).
    visit_gap_s: float = 120.0
    # Each answered turn moves the NPC's regard for the player this far toward its feeling's valence then: about
    # ten turns of one mood set it, so one insult in a friendly acquaintance does not.
    regard_weight: float = 0.2


@dataclass(frozen=True, kw_only=True)
class ToneConfig:
    """How a stretch's tone verdict is made (``engine/stages/tone.py``)."""

    # A stretch's final verdict waits at most this long for the turn read's voice states (Whisper's encoder,
    # ``Read.voice``), which read held-out RAVDESS actors far better than prosody alone. The read is done ~0.1-0.3 s
    # after the voice fades (often before: the read of a fading stretch starts early); past this, or when the
    # NPC is talking and no turn read comes, the prosody verdict goes alone. The bench counts a turn's events
    # up to 1 s after it ends.
    voice_wait_s: float = 0.8


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """Everything the engine's stages read."""

    understanding: UnderstandingConfig = field(default_factory=UnderstandingConfig)
    addressee: AddresseeConfig = field(default_factory=AddresseeConfig)
    hearing: HearingConfig = field(default_factory=HearingConfig)
    reading: ReadingConfig = field(default_factory=ReadingConfig)
    onset: OnsetConfig = field(default_factory=OnsetConfig)
    temperament: TemperamentConfig = field(default_factory=TemperamentConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    tone: ToneConfig = field(default_factory=ToneConfig)


# ----------------------------------------------------------------------------------------------- floor


@dataclass(frozen=True, kw_only=True)
class ListeningConfig:
    """When the player's turn is over, by silence, how sure the NPC is that it heard a whole request."""

    # silero hears the voice stop 30-130 ms late, so 0.14 s of its silence is a human gap of about 0.2 s;
    # less would answer inside the short pause of a comma ("My sword is broken, | can you fix it?").
    sure_silence_s: float = 0.14
    end_silence_s: float = 0.35  # a middling fit: most are whole requests in other words ("Who are you?")
    incomplete_silence_s: float = 1.2  # unfinished words, or words that fit nothing: no hurry to say "what?"
    unsure_silence_s: float = 0.8  # only the streaming words, and they end unfinished
    min_turn_speech_s: float = 0.25  # less voice than this is a cough or a click, not a turn
    # Words not heard clearly get "say that again": not at once (the player may be going on, or about to say it
    # again), not after the 1.2 s either (they are waiting for the NPC).
    unclear_silence_s: float = 0.6
    # A fit this close to a topic's examples is a request the persona knows (a fragment Whisper completed
    # seldom fits this well); below ``unsure_fit`` it fits nothing (the NPC would ask again).
    sure_fit: float = 0.7
    unsure_fit: float = 0.5
    # Words that look unfinished are a whole request all the same from this fit (``listening.strong_fit_unfinished``):
    # the first halves of paused requests fit at most 0.69 on dev and the tuning seed ("Who you am?" 0.69, "What I
    # need most is" 0.68); "Got any shields I could buy," (said with a "?") fits 0.85.
    strong_fit: float = 0.8
    # A question that fits one topic plainly better than any other is a clear request at a lower fit:
    # "What are your prices?" (0.66, next 0.42), "Who are you?" (0.63, next 0.37).
    question_fit: float = 0.6
    question_margin: float = 0.2
    # A statement heard clearly that fits nothing is answered at the middling gap only if the turn is one stretch of
    # speech: at most this much voice before its last stretch (``listening.off_topic_statement``). The tuning seed's
    # off-topic statements have none; a reader's sentence after others does, and without this check
    # ``python -m npc_voice.bench.real_pauses`` cut into 3 of 16 reading pauses, against 1 with it (as before).
    statement_earlier_speech_s: float = 0.1


@dataclass(frozen=True, kw_only=True)
class SpeakingConfig:
    """Speech over the NPC: a backchannel it talks through, or an interruption it yields to."""

    backchannel_max_s: float = 0.7  # "uh-huh", "yeah", "I see" are shorter than this
    backchannel_hold_max_s: float = 1.5  # a stretch read as a backchannel ("mmm-hmmm") may run this long
    read_grace_s: float = 0.25  # past backchannel_max_s, wait this long for the stretch's accurate read
    cue_min_s: float = 0.2  # a cut-in word counts once this much speech carries it (inf: the NPC ignores cues)
    # Speech over the NPC counts as the player only if the duplex model's player head hears them in some
    # chunk of it (AUC 0.998 on held-out voices with echo); else it is the NPC's own voice leaking past the
    # canceller, or noise. Past ``unheard_max_s`` of speech whose read says something that is not the NPC's
    # words, it is the player whatever the model says (a voice unlike any it learned).
    player_p: float = 0.5
    unheard_max_s: float = 3.0
    # The player's voice this long over the NPC and nothing decided yet: the NPC pauses its line at once (as a
    # person falls silent when talked over), and takes it up again if it was only "mm-hm". Waiting for the words
    # ("wait!" is heard 0.5-0.7 s after its onset) stops it 0.53 s after an interruption begins (dev).
    hold_after_s: float = 0.15
    # ... and only when the duplex model is this sure it is the player: a pause for the NPC's own echo (P(player)
    # past 0.5 at gain 0.7, delay 39 ms on a tuning case) breaks its line for nothing.
    hold_player_p: float = 0.9


@dataclass(frozen=True, kw_only=True)
class ProjectionConfig:
    """Answering in the chunk where the player's voice ends, before any silence is heard."""

    projected_gap_s: float = 0.2  # a human gap, from the voice's end to the answer
    # Quiet needed after the voice. A stop's closure ("bro|ken", "gate|t") can be this long: the session
    # does not yield to the release burst that follows it, only to voice that goes on.
    min_gap_s: float = 0.04
    unread_s: float = 0.3  # about a word: the read may miss the last one if the words end finished
    # A read made well before the voice ended (a busy machine reads a short turn late) may miss up to two
    # words if it plainly fits and the streaming words, which heard them, end finished ("where is the" | "castle").
    stale_s: float = 0.5
    p_end: float = 0.5  # the prosody model hears a complete turn (a final fall, not a comma's level tune)
    # Without the prosody's word, this much quiet by loudness (silero may not have heard any of it yet).
    quiet_s: float = 0.15
    hold_p: float = 0.0  # ... unless the prosody is sure the player only paused (below this)


@dataclass(frozen=True, kw_only=True)
class FloorConfig:
    """The ``rules`` strategy set's thresholds; ``for_patience`` fits them to a persona's temperament."""

    listening: ListeningConfig = field(default_factory=ListeningConfig)
    speaking: SpeakingConfig = field(default_factory=SpeakingConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)

    @classmethod
    def for_patience(cls, patience: float) -> FloorConfig:
        """Patience 0.5 is the neutral listener. A patient NPC (the herbalist) waits a little longer before it
        answers and yields to shorter speech over it; an impatient one (the guard) answers sooner, yields only
        to longer speech and ignores a cue word alone below patience 0.3: the player must insist."""
        scale = 0.5 + patience
        return cls(
            listening=ListeningConfig(sure_silence_s=round(0.14 * scale, 3), end_silence_s=round(0.35 * scale, 3)),
            speaking=SpeakingConfig(
                backchannel_max_s=round(min(1.5, max(0.4, 0.7 * (1.5 - patience))), 3),
                cue_min_s=0.2 if patience >= 0.3 else float("inf"),
                hold_after_s=0.15 if patience >= 0.3 else float("inf"),  # an impatient NPC talks on over them
            ),
            projection=ProjectionConfig(projected_gap_s=round(0.2 * scale, 3)),
        )

    def with_prosody(self, p_end: float, hold_p: float) -> FloorConfig:
        """The prosody model's own decision thresholds (``models/endpoint``) for projection."""
        return replace(self, projection=replace(self.projection, p_end=p_end, hold_p=hold_p))


@dataclass(frozen=True, kw_only=True)
class DuplexConfig:
    """The learned strategy set: the duplex model's heads plus the words (``docs/duplex.md``)."""

    shift_on: float = 0.5  # P(shift): the player's turn is over
    shift_weak: float = 0.25  # with finished accurate words, the model need only not object
    complete_silence_s: float = 0.35  # accurate words that end a sentence, and this much silence: answer
    hold_silence_s: float = 1.0  # finished words but the model expects more: wait a within-turn pause out
    interrupt_on: float = 0.6  # P(interrupt), on two chunks in a row (an "mm-hm" onset looks like one for one)
    cue_player_on: float = 0.5  # P(player) that makes a cue word the player's, not echo
    incomplete_silence_s: float = 1.2
    long_stretch_s: float = 1.0  # speech the player head is sure of, this long over the NPC, is no backchannel
    max_wait_s: float = 1.5  # a pause this long after words is answered even if the model hesitates
    min_turn_speech_s: float = 0.25


@dataclass(frozen=True, kw_only=True)
class CascadeConfig:
    """The cascade baseline, as pipecat and LiveKit users build turn-taking: silero VAD, the smart-turn v3
    end-of-turn model, LiveKit's barge-in. Defaults are theirs."""

    # pipecat recommends VAD stop_secs 0.2 with smart-turn: the model is asked once the VAD hears that much.
    vad_stop_s: float = 0.2
    complete_p: float = 0.5  # smart-turn's own cut: P(complete) above it ends the turn
    stop_s: float = 3.0  # pipecat's SmartTurnParams.stop_secs: an incomplete turn ends after this silence
    max_duration_s: float = 8.0  # smart-turn reads at most the last 8 s
    min_turn_speech_s: float = 0.25
    # LiveKit's InterruptionOptions (the barge-in: 0.5 s of speech or 2 words).
    min_interruption_duration_s: float = 0.5
    min_interruption_words: int = 2
    # A pause that gives no words within this long of an interruption was a false one: resume the line.
    false_interruption_timeout_s: float = 2.0
