"""How old a signed checkpoint is, and `--not-older-than`: a genuinely signed but old checkpoint verifies
as well as a fresh one, so a verifier that cares about what the log says now (a log that may have grown,
or been rolled back to an older state it once signed) bounds the checkpoint's age.

The age is measured from the time the log signed the checkpoint, which cep-bus puts inside the signature
(`cepbus.auditlog.note.Checkpoint.signed_at_ms`); a checkpoint without it (signed before cep-bus wrote
the line) has no age a verifier can trust, so a bound refuses it. Pure: times in, text out.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_DURATION = re.compile(r"([1-9][0-9]{0,8})([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_duration(text: str) -> int:
    """Seconds of a duration such as `90s`, `30m`, `24h`, `7d`; ValueError with a one-line message."""
    found = _DURATION.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"{text[:20]!r} is not a duration such as 24h or 7d (s, m, h or d)")
    return int(found.group(1)) * _UNIT_S[found.group(2)]


def iso(ms: int) -> str:
    """A Unix ms time as the checkpoint's line writes it (UTC, to the second)."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe_age(age_ms: int) -> str:
    """`3 d 4 h ago`, `12 min ago`, `in the future` (a log clock ahead of this one): for people."""
    if age_ms < 0:
        return f"{describe_age(-age_ms).removesuffix(' ago')} in the future"
    minutes = age_ms // 60_000
    days, hours, rest = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days} d {hours} h ago"
    if hours:
        return f"{hours} h {rest} min ago"
    return f"{rest} min ago"


def signed_time_line(size: int, signed_at_ms: int | None, now_ms: int) -> str:
    """What a verifier prints about the checkpoint: its size and when it was signed."""
    if signed_at_ms is None:
        return f"checkpoint: size {size}, no signed time (signed before cep-bus wrote one): age unknown"
    return f"checkpoint: size {size}, signed at {iso(signed_at_ms)} ({describe_age(now_ms - signed_at_ms)})"


def staleness(signed_at_ms: int | None, limit_s: int, limit_text: str, now_ms: int) -> str | None:
    """Why the checkpoint is older than `limit_s` (None: it is not), one line."""
    if signed_at_ms is None:
        return (
            f"the checkpoint carries no signed time, so nothing shows it is newer than {limit_text}: "
            "ask for an export against a checkpoint the ledger signs now"
        )
    age_ms = now_ms - signed_at_ms
    if age_ms <= limit_s * 1000:
        return None
    return (
        f"the checkpoint was signed at {iso(signed_at_ms)}, {describe_age(age_ms)}: older than "
        f"--not-older-than {limit_text}"
    )


__all__ = ["describe_age", "iso", "parse_duration", "signed_time_line", "staleness"]
