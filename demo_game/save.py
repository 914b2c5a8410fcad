"""The demo's save game: the player's purse, satchel and quest, in a small JSON file next to the NPCs' memory file.

What the game owns (gold, items, the quest) is the game's to save; what the NPCs remember of the player is the
sidecar's memory file (``npc_voice/memory``), which the game only chooses the place of. Written whole, atomically
(a temporary file renamed over the old one), whenever it changes, so a crash leaves the last save or the one
before, never half a file.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

START_GOLD = 100


def default_dir() -> Path:
    """The demo's save folder: ``emberbrook`` in npc-voice's user data folder."""
    import platformdirs

    return Path(platformdirs.user_data_dir("npc-voice", appauthor=False)) / "emberbrook"


@dataclass
class SaveGame:
    """The player's purse and satchel, the quest stage, and whatever deal an NPC holds open."""

    gold: int = START_GOLD
    satchel: list[str] = field(default_factory=list)
    quest_stage: str = "none"
    offer: dict | None = None  # {"item", "price", "npc"} of the last offer not yet taken

    @classmethod
    def load(cls, path: Path) -> SaveGame:
        """The save at ``path``, or a new game if there is none (or it is unreadable: said in the log)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(gold=int(data["gold"]), satchel=[str(i) for i in data["satchel"]],
                       quest_stage=str(data.get("quest_stage", "none")), offer=data.get("offer"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("save %s is unreadable (%s): starting a new game", path, exc)
            return cls()

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".save-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(asdict(self), f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def state(self) -> dict:
        """What the villagers' personas are told of it (their conditions test these keys)."""
        return {"gold": self.gold, "has_longsword": "longsword" in self.satchel, "quest_stage": self.quest_stage,
                "open_offer": self.offer["item"] if self.offer else "none"}
