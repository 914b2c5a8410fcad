"""What NPCs remember of players: the bounded record (``record.py``), the facts a player states (``facts.py``) and
the SQLite file that keeps them between sessions (``store.py``). See docs/game.md, "Memory"."""

from npc_voice.memory.facts import stated_facts
from npc_voice.memory.record import ENDINGS, FACTS, Memory, TopicCount, Turn
from npc_voice.memory.store import Change, MemoryStore, MemoryStoreError, default_path

__all__ = ["ENDINGS", "FACTS", "Change", "Memory", "MemoryStore", "MemoryStoreError", "TopicCount", "Turn",
           "default_path", "stated_facts"]
