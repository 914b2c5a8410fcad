"""``python -m demo_game``: play the demo village (see ``--help``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from demo_game.game import Game
from npc_voice.audio.live import parse_device


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="npc-voice demo", description="Emberbrook: talk to the villagers.")
    ap.add_argument("--no-mic", action="store_true", help="type to speak even if there is a microphone")
    ap.add_argument("--silent", action="store_true", help="no sound card at all (headless runs)")
    ap.add_argument("--scripted", action="store_true", help="the hands-free demo: greeting, answer, backchannel, "
                    "interruption, emotion change, then the other villagers")
    ap.add_argument("--device", default=None, help="sound device, index or name (`npc-voice devices` lists them)")
    ap.add_argument("--sidecar", default=None, help="use a running sidecar at this address instead of starting one")
    ap.add_argument("--screenshot", type=Path, default=None,
                    help="save a screenshot after --frames frames once the villagers are awake, then quit")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--shots", type=Path, default=None, help="with --scripted: save a screenshot at each beat "
                    "into this folder and quit at the end")
    ap.add_argument("--frametime", action="store_true", help="print frame work time p50/p99 with and without "
                    "an active conversation on exit")
    args = ap.parse_args(argv)
    audio = "silent" if args.silent else "typed" if args.no_mic else "auto"
    game = Game(audio=audio, device=parse_device(args.device), sidecar=args.sidecar, scripted=args.scripted,
                screenshot=args.screenshot,
                frames=args.frames, shots=args.shots, frametime=args.frametime)
    return game.run()


if __name__ == "__main__":
    raise SystemExit(main())
