"""Emberbrook: the npc-voice demo village (``python -m demo_game``)."""
