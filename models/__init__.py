"""Trained weights, shipped as package data: this folder is ``npc_voice.models`` in the installed package.

Each subfolder holds one model with its report; ``docs/`` and each ``report.md`` name the command that
reproduces it. Code finds them with ``npc_voice.data.model_dir``, never through the repository layout.
"""
