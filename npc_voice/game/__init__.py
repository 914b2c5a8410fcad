"""The game side: a pygame component that streams the microphone and drives animation.

``VoiceHub`` (one per game) owns the sidecar connection and the sound device; ``NPCVoice`` is one
talking NPC; ``npc_voice.game.events`` lists the pygame events they post. Nothing here imports the
engine or torch.
"""

from npc_voice.game.animation import Animator, Pose
from npc_voice.game.hub import VoiceHub
from npc_voice.game.npc import NPCVoice

__all__ = ["Animator", "NPCVoice", "Pose", "VoiceHub"]
