# The two commands of the README. Each sets up what it needs first (idempotent).
.PHONY: setup demo test

setup:
	@scripts/setup.sh

demo: setup
	.venv/bin/python -m demo_game

test: setup
	.venv/bin/ruff check npc_voice demo_game tests examples
	.venv/bin/python -m pytest -q tests
