"""Default personas, shipped as package data: this folder is ``npc_voice.assets`` in the installed package.

``npc_voice.data.builtin_persona_dir`` finds ``personas/``; a game adds its own persona folders with
``--personas`` or ``$NPC_VOICE_PERSONAS`` (docs/personas.md).
"""
