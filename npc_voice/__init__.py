"""npc-voice: full-duplex voice conversation for game characters."""

__version__ = "0.1.0"
