"""Turn-state stores: Redis (shared by every web instance) and an in-process fallback."""

from voicebot.store.base import TurnStateStore
from voicebot.store.memory import MemoryStore
from voicebot.store.resilient import ResilientStore

__all__ = ["MemoryStore", "ResilientStore", "TurnStateStore"]
