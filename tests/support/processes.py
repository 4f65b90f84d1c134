"""Helper processes a test starts (the example partner, the partner inbox): stopped the same way."""

from __future__ import annotations

import subprocess
from pathlib import Path


def stop_process(process: subprocess.Popen[bytes], log_path: Path) -> None:
    """SIGTERM, a kill after 15 s; a process that did not end cleanly gets its log's tail printed (pytest
    shows it with the failure)."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    if process.returncode not in (0, -15):
        print(log_path.read_text(errors="replace")[-3000:])
