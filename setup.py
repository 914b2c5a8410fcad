"""The package list, which pyproject.toml cannot express: every npc_voice subpackage (found, so a new one is
never left out of the wheel), the demo village, and the two data packages pyproject maps from the
repository's models/ and assets/ folders."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["npc_voice", "npc_voice.*", "demo_game"]), "npc_voice.models", "npc_voice.assets"])
