"""Run by tests/test_live_sound.py in its own process (PortAudio must start after the virtual card):
a VoiceHub on the `pulse` device with one NPC; prints what happens as JSON lines. When the device is lost,
it answers the VOICE_DEVICE event by typing a question, as a player would once the game says so."""

import json
import sys
import time

import pygame

from npc_voice.game import NPCVoice, VoiceHub
from npc_voice.game import events as ge


def say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


pygame.display.init()
pygame.display.set_mode((64, 64))
hub = VoiceHub(sys.argv[1], audio="auto", device="pulse")
say(status=hub.status, has_mic=hub.has_mic)
smith = NPCVoice(hub, "smith", "blacksmith", position=(0.0, 0.0))
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    for event in pygame.event.get():
        smith.process_events(event)
        if event.type == ge.NPC_READY:
            say(ready=True)
        elif event.type == ge.VOICE_DEVICE:
            say(device=event.status, has_mic=event.has_mic, hub_status=hub.status)
            hub.say("I would like to buy a sword.")
        elif event.type == ge.NPC_RESPONSE:
            say(response=event.topic)
            hub.close()
            sys.exit(0)
    hub.listen_from((0.0, 0.0))
    smith.update(1 / 60)
    time.sleep(1 / 60)
hub.close()
sys.exit(1)
