from __future__ import annotations

import asyncio
from typing import Any

from npc_voice.audio.format import SAMPLE_RATE
from npc_voice.config import CascadeConfig
from npc_voice.engine.frame import StepFrame
from npc_voice.engine.state import HearingState, TurnState


def smart_turn_analyzer(config: CascadeConfig) -> Any:
    """pipecat's own smart-turn v3 analyzer with the ONNX model its wheel ships (BSD-2-Clause;
    ``pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx``), one CPU thread."""
    try:
        from loguru import logger

        logger.disable("pipecat")  # its banner and a debug line on every turn, on the sidecar's stderr
        from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
        from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
    except ImportError as exc:  # an optional extra: the game itself never needs it
        raise RuntimeError("the cascade policy needs pipecat-ai: pip install 'npc-voice[cascade]'") from exc
    analyzer = LocalSmartTurnAnalyzerV3(
        sample_rate=SAMPLE_RATE, cpu_count=1,
        params=SmartTurnParams(stop_secs=config.stop_s, max_duration_secs=config.max_duration_s))
    analyzer.set_sample_rate(SAMPLE_RATE)
    return analyzer


class SmartTurn:
    """The cascade strategy's end-of-turn model, fed as pipecat feeds it: every chunk with the VAD's verdict, and
    asked once per pause, when the VAD has heard ``vad_stop_s`` of silence; its P(complete) holds until the
    player speaks again. Cleared when the turn ends, as pipecat's stop strategy clears it."""

    def __init__(self, config: CascadeConfig, hearing: HearingState, turn: TurnState, analyzer: Any) -> None:
        self.config, self.hearing, self.turn, self.analyzer = config, hearing, turn, analyzer
        self.p_complete: float | None = None

    def run(self, frame: StepFrame) -> None:
        h = self.hearing
        assert frame.clean is not None
        if self.turn.speech_s == 0 and not h.in_speech:
            if self.analyzer.speech_triggered:
                self.analyzer.clear()
            self.p_complete = None
        self.analyzer.append_audio(frame.clean.tobytes(), h.in_speech)
        if h.in_speech:
            self.p_complete = None
        elif self.p_complete is None and self.turn.speech_s > 0 and h.silence_s >= self.config.vad_stop_s:
            _, metrics = asyncio.run(self.analyzer.analyze_end_of_turn())
            self.p_complete = float(metrics.probability) if metrics is not None else 0.0
        frame.p_complete = self.p_complete
