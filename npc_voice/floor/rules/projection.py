from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from npc_voice.config import AddresseeConfig, ListeningConfig, ProjectionConfig
from npc_voice.features.words import looks_incomplete, words_of
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.evidence import asks_off_topic, clear_request, not_addressed
from npc_voice.floor.observation import FloorObservation, Understood


@dataclass(frozen=True)
class Projection:
    """Answer in the very chunk in which the player's voice ends, before any silence is heard, when
    everything agrees that the turn is over: the voice has been quiet ``min_gap_s`` by its loudness, the last
    accurate read misses at most ``unread_s`` of it (``stale_s`` if it plainly fits and the streaming words,
    which heard the rest, end finished too) and is a clear request whose words end finished, and the prosody
    model hears a complete turn (a final fall, not the level tune of a comma) — or, when it is not sure either
    way, the voice has been quiet ``quiet_s``; when it is sure the player only paused, once a human gap has
    passed. The answer then starts ``projected_gap_s`` after the voice ended, inside the next chunk. If the
    player's voice comes back before the answer can have reached them, the NPC yields (``gate.projection_yield``).

    A question heard clearly that fits nothing the persona knows ("What's the population of Madrid?") is
    projected too, its ``unknown`` line at the same gap, but only on the prosody's word that the turn is complete
    and on a read that misses at most ``unread_s`` of the voice. Without it, such a question waited for silero's
    silence as well as for that read (held-out seed 2902, two players at once: it answered 2 of the 7 clear ones,
    0.24 and 0.36 s after the voice, against 0.46 and 0.84 s before). It cannot go before the read: where that came
    0.35 s after the voice (seed 2901), the silence rules answered at the same moment."""

    name: ClassVar[str] = "listening.projection"
    listening: ListeningConfig
    config: ProjectionConfig
    addressee: AddresseeConfig = field(default_factory=AddresseeConfig)  # speech not for the NPC is never projected

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        lead = self.lead(obs)
        if lead is None:
            return None
        tune = "unknown" if obs.p_end is None else f"{obs.p_end:.2f}"
        why = f"voice quiet {obs.voice_gap_s:.2f} s, fit {obs.fit:.2f}, P(end) {tune}; starts in {lead:.2f} s"
        if obs.understood is Understood.UNKNOWN:
            why = f"heard clearly (P {obs.clarity:.2f}), nothing it knows; {why}"
        return FloorDecision(Action.RESPOND, self.name, why, lead_in=lead)

    def lead(self, obs: FloorObservation) -> float | None:
        """Seconds after now at which to start the answer, or None to wait for the silence."""
        if obs.npc_speaking or obs.voice_gap_s is None or obs.unread_s is None or obs.fit is None:
            return None
        if not_addressed(obs.addressee, self.addressee) is not None:
            return None
        if not self._turn_and_quiet(obs) or not self._read_enough(obs):
            return None
        if not ((self._clear_request(obs) and self._sounds_over(obs)) or self._asks_off_topic(obs)):
            return None
        if not words_of(obs.words) or looks_incomplete(obs.words):
            return None
        return max(0.0, self.config.projected_gap_s - obs.voice_gap_s)

    def _turn_and_quiet(self, obs: FloorObservation) -> bool:
        """Enough of a turn, and quiet at least a stop's closure."""
        assert obs.voice_gap_s is not None
        return obs.turn_speech_s >= self.listening.min_turn_speech_s and obs.voice_gap_s >= self.config.min_gap_s

    def _clear_request(self, obs: FloorObservation) -> bool:
        """A clear request by its words and fit."""
        li = self.listening
        return clear_request(obs.words, obs.fit, obs.margin, li.sure_fit, li.question_fit, li.question_margin)

    def _asks_off_topic(self, obs: FloorObservation) -> bool:
        """Heard clearly and fitting nothing it knows, asking something (``asks_off_topic``), the prosody hears the
        turn complete, and the streaming words hold as many words as the read. With no topic to check the words
        against, these are the signs that the player is done: in a pause inside a turn Whisper makes a question of
        the fragment ("What time does that?", streaming "what was", for "What time does the | train leave for
        London?"; "Could you find it?", streaming "could you"), where a whole question heard by both recognisers
        has as many streaming words or more (tuning seed 7001)."""
        return (obs.understood is Understood.UNKNOWN and obs.p_end is not None and obs.p_end >= self.config.p_end
                and asks_off_topic(obs.words) and len(words_of(obs.partial)) >= len(words_of(obs.words)))

    def _read_enough(self, obs: FloorObservation) -> bool:
        """The read misses at most about a word; up to ``stale_s`` only if it plainly fits and the streaming words,
        which heard the rest, end finished: a question at a lower fit, read before its last words ("What are you
        doing?" | "with prices?"), may be a different request once read whole."""
        assert obs.unread_s is not None and obs.fit is not None
        if obs.unread_s > self.config.stale_s:
            return False
        return obs.unread_s <= self.config.unread_s or (
            obs.fit >= self.listening.sure_fit and bool(words_of(obs.partial)) and not looks_incomplete(obs.partial))

    def _sounds_over(self, obs: FloorObservation) -> bool:
        """The prosody hears a complete turn; or, unsure, the voice has been quiet ``quiet_s``; or, sure the player
        only paused, a human gap has passed (as the silence rule does once silero's silence catches up: it hears
        the voice stop 30-130 ms late, a chunk later)."""
        c = self.config
        assert obs.voice_gap_s is not None
        if obs.p_end is not None and obs.p_end >= c.p_end:
            return True
        sounds_paused = obs.p_end is not None and obs.p_end < c.hold_p and obs.voice_gap_s < c.projected_gap_s
        return not sounds_paused and obs.voice_gap_s >= c.quiet_s
