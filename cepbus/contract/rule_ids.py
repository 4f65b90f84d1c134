"""Rule ids that more than one service reads (the full rule set is the router's, `services/router/rules.py`).

A rule id travels in `NoticeRequested.rules` and `IntakeDecided.rules`; a consumer that acts on one
names it from here, so the router and its consumers cannot drift apart.
"""

from __future__ import annotations

#: The regional operator does not serve public agents: the notifier words the notice accordingly.
PUBLIC_AGENT_RULE = "R-PUBLIC-AGENT"

__all__ = ["PUBLIC_AGENT_RULE"]
