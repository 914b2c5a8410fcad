"""``python -m demo_game``: play the demo village (see ``--help``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from demo_game.game import Game
from demo_game.script import SCENARIOS
from npc_voice.audio.live import parse_device


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="npc-voice demo", description="Emberbrook: talk to the villagers.")
    ap.add_argument("--no-mic", action="store_true", help="type to speak even if there is a microphone")
    ap.add_argument("--silent", action="store_true", help="no sound card at all (headless runs)")
    ap.add_argument("--scripted", nargs="?", const="tour", default=None, choices=sorted(SCENARIOS),
                    help="a hands-free demo: 'tour' (the default: greeting, a polite purchase, answer, backchannel, "
                    "interruption, emotion change, then the other villagers), 'trade' (give your name, buy the "
                    "smith's sword, hear the guard's news), 'return' (come back: the smith remembers you)")
    ap.add_argument("--player", default="player1", help="the player's id: the villagers remember them by it")
    ap.add_argument("--save-dir", type=Path, default=None, help="where the save and the villagers' memory file are "
                    "(default: emberbrook in npc-voice's user data folder)")
    ap.add_argument("--new-game", action="store_true", help="start over: a full purse, and the villagers forget "
                    "this player")
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
    game = Game(audio=audio, device=parse_device(args.device), sidecar=args.sidecar,
                scripted=args.scripted is not None, screenshot=args.screenshot,
                frames=args.frames, shots=args.shots, frametime=args.frametime, scenario=args.scripted or "tour",
                player=args.player, save_dir=args.save_dir, new_game=args.new_game)
    return game.run()


if __name__ == "__main__":
    raise SystemExit(main())
