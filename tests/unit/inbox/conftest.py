"""The inbox tests' fixture: `harness` (tests/unit/inbox/harness.py)."""

from tests.unit.inbox.harness import harness

__all__ = ["harness"]
