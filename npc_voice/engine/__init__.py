"""The micro-turn engine: one session state and one step per 200 ms chunk."""
