"""The ids the referral read side takes in its paths (referrals, organisations, status updates).

One definition, because three processes check them: the router's read side refuses any other id (422),
the partner inbox does not ask it about one, and the inbox follows a `next` link only to a page that
names one. Letters, digits and `._:-`, at most 128 characters, starting with a letter or a digit: wide
enough for every id the bus issues (UUIDs, organisation ids), narrow enough to sit in a URL path as is.
"""

from __future__ import annotations

import re

#: One id, unanchored: the piece a larger pattern (an inbox path naming a referral) is built from.
ID_FRAGMENT = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
#: A whole string that is one id (FastAPI's `Path(pattern=...)`).
ID_PATTERN = rf"^{ID_FRAGMENT}$"
ID_REGEX = re.compile(ID_PATTERN)

__all__ = ["ID_FRAGMENT", "ID_PATTERN", "ID_REGEX"]
