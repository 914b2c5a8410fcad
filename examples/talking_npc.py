"""A minimal pygame game with one talking NPC, using only the public API of docs/game.md.

    python examples/talking_npc.py                 # talk into the microphone (or press Enter and type)
    python examples/talking_npc.py --audio silent --say "Do you sell swords?" --answers 1   # headless
"""

import argparse

import pygame

from npc_voice.game import NPCVoice, VoiceHub
from npc_voice.game import events as voice_events
from npc_voice.transport.process import SidecarProcess


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="One talking blacksmith.")
    ap.add_argument("--audio", default="auto", choices=["auto", "typed", "silent"], help="see VoiceHub")
    ap.add_argument("--device", default=None, help="sound device index or name (npc-voice devices)")
    ap.add_argument("--say", action="append", default=[], help="a line to type-to-speak, one per answer")
    ap.add_argument("--answers", type=int, default=0, help="quit after this many answers (0: Esc quits)")
    args = ap.parse_args(argv)
    pygame.init()
    screen, clock = pygame.display.set_mode((640, 360)), pygame.time.Clock()
    font = pygame.font.Font(None, 26)
    sidecar = SidecarProcess(procs=1)  # one player: the sessions in the sidecar's own process, the quickest start
    sidecar.wait_ready()  # ~10 s of model loading: a real game shows a loading screen meanwhile
    device = int(args.device) if args.device and args.device.isdigit() else args.device
    hub = VoiceHub(sidecar.address, audio=args.audio, device=device)
    smith = NPCVoice(hub, "smith", "blacksmith", position=(420, 180))
    player, lines, typed, answers = (300.0, 200.0), list(args.say), None, 0
    print(f"audio: {hub.status}", flush=True)
    running = True
    while running:
        dt = clock.tick(60) / 1000
        for event in pygame.event.get():
            if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
                running = False
            elif event.type == pygame.KEYDOWN and event.key == pygame.K_RETURN:
                if typed:
                    hub.say(typed)  # type-to-speak: goes in as microphone audio
                typed = "" if typed is None else None
            elif event.type == pygame.TEXTINPUT and typed is not None:
                typed += event.text
            smith.process_events(event)  # drives the NPC's animation; True for its voice events
            if event.type == voice_events.NPC_READY and lines:
                hub.say(lines.pop(0))
            elif event.type == voice_events.NPC_RESPONSE:
                answers += 1
                print(f"smith [{event.topic}]: {event.text} ({event.latency_ms} ms)", flush=True)
                if lines:
                    hub.say(lines.pop(0))
            elif event.type == voice_events.NPC_SPEECH_END and args.answers and answers >= args.answers:
                running = False
            elif event.type == voice_events.VOICE_DEVICE:
                print(f"audio: {event.status}", flush=True)
        hub.listen_from(player, (1.0, 0.0))  # the player faces the smith: he hears them
        pose = smith.update(dt)
        screen.fill((60, 90, 60))
        pygame.draw.circle(screen, (80, 120, 220), player, 18)
        mouth = int(4 + 14 * pose.mouth_open)
        pygame.draw.circle(screen, (200, 150, 110), (420, 180), 40)
        pygame.draw.ellipse(screen, (90, 30, 30), (420 - 12, 192, 24, mouth))
        smith.draw(screen, (420, 130))  # subtitles and what the smith heard
        hint = f"> {typed}_" if typed is not None else f"{pose.expression} · Enter: type a line · Esc: quit"
        screen.blit(font.render(hint, True, (240, 240, 230)), (12, 330))
        pygame.display.flip()
    hub.close()
    sidecar.stop()
    pygame.quit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
