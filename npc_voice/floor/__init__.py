"""Who has the floor: named rules over a frozen observation, tried in a declared order by an arbiter.

``observation.py`` (what the rules see), ``decision.py`` (what they decide and which rule did),
``rules/`` (one rule per file), ``arbiter.py`` (the order), ``strategies.py`` (the three strategy sets:
``rules``, ``duplex``, ``cascade``). Thresholds are in ``npc_voice/config.py``.
"""
