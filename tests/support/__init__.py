"""What several tests share: builders of events (`factories`), stand-ins for clocks and producers
(`fakes`), PostgreSQL schemas per test (`postgres`), and the repository root (`ROOT`)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
