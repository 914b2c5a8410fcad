"""Persona files: what an NPC knows, says and how it sounds."""
