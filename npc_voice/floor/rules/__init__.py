"""Floor rules, one per file. A rule looks at a frozen ``FloorObservation`` and its config and returns a
``FloorDecision`` naming itself, or ``None`` to let the next rule of its phase decide
(``npc_voice/floor/strategies.py`` declares the orders)."""
