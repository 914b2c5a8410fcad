"""Decisions: which topic answers the player, when to take or yield the floor, emotion."""
