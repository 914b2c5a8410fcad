"""The floor rules decide as the engine's policies did before they were split into named rules: every
decision recorded from the old code (tests/data/README.md) is replayed and must come out the same."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from npc_voice.config import DuplexConfig, FloorConfig, ListeningConfig, ProjectionConfig, SpeakingConfig
from npc_voice.floor.observation import DuplexOutputs, FloorObservation
from npc_voice.floor.strategies import StrategySet, duplex_strategy, rules_strategy

RECORDS = Path(__file__).parent / "data" / "floor_records.jsonl.gz"
LISTENING = ("sure_silence_s", "end_silence_s", "incomplete_silence_s", "unsure_silence_s", "min_turn_speech_s",
             "sure_fit", "unsure_fit", "question_fit", "question_margin")
SPEAKING = ("backchannel_max_s", "backchannel_hold_max_s", "read_grace_s", "cue_min_s", "player_p", "unheard_max_s")
PROJECTION = {"projected_gap_s": "projected_gap_s", "project_min_gap_s": "min_gap_s", "project_unread_s": "unread_s",
              "project_stale_s": "stale_s", "project_p_end": "p_end", "project_quiet_s": "quiet_s",
              "project_hold_p": "hold_p"}


def strategy(record: dict) -> StrategySet:
    """The strategy set with the recorded policy's thresholds (the old field names)."""
    c = record["config"]
    if record["policy"] == "duplex":
        return duplex_strategy(DuplexConfig(**c))
    speaking = {k: c[k] for k in SPEAKING}
    if record["cue_min_inf"]:  # an impatient persona: JSON has no infinity
        speaking["cue_min_s"] = float("inf")
    return rules_strategy(FloorConfig(listening=ListeningConfig(**{k: c[k] for k in LISTENING}),
                                      speaking=SpeakingConfig(**speaking),
                                      projection=ProjectionConfig(**{new: c[old] for old, new in PROJECTION.items()})))


def replayed(record: dict, strategies: dict[str, StrategySet]) -> object:
    key = json.dumps([record["policy"], record["config"], record.get("cue_min_inf")], sort_keys=True)
    s = strategies.setdefault(key, strategy(record))
    obs = FloorObservation(**record["obs"])
    if record["method"] == "project":
        assert s.projection is not None
        return s.projection.lead(obs)
    model = {}
    if record["policy"] == "duplex":
        model = {"model": record["out"] and DuplexOutputs(**record["out"]),
                 "model_previous": record["previous"] and DuplexOutputs(**record["previous"])}
    decision = s.decide(FloorObservation(**record["obs"], words_accurate=record["accurate"], **model))
    assert decision.rule and decision.rule != "none"
    return decision.action.value


def test_every_recorded_decision_of_the_old_policies_is_made_again() -> None:
    strategies: dict[str, StrategySet] = {}
    with gzip.open(RECORDS, "rt") as lines:
        records = [json.loads(line) for line in lines]
    assert len(records) > 8000
    kinds = {(r["policy"], r["method"], r["result"] if r["method"] == "decide" else r["result"] is None)
             for r in records}
    # every action of both policies, and projections made and declined, are among them
    assert {("baseline", "decide", a) for a in ("listen", "respond", "continue", "backchannel", "interrupted")} <= kinds
    assert {("duplex", "decide", a) for a in ("listen", "respond", "continue", "backchannel", "interrupted")} <= kinds
    assert {("baseline", "project", True), ("baseline", "project", False)} <= kinds
    differ = [(r["method"], r["result"], got, r["obs"]) for r in records
              if (got := replayed(r, strategies)) != r["result"]]
    assert not differ, f"{len(differ)} of {len(records)} differ; first: {differ[:3]}"
