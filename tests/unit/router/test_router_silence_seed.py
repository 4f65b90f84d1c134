"""Operator silence outlives the router's processes: its store remembers each operator's last event."""

from __future__ import annotations

from pathlib import Path

from cepbus.reference import load_reference


def test_the_router_store_remembers_each_operators_last_event(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from services.router.handlers import RouterHandlers
    from services.router.store import RouterStore
    from tests.support.factories import intake

    url = f"sqlite:///{tmp_path / 'router.db'}"
    store = RouterStore(url)
    handlers = RouterHandlers(load_reference(), store=store)
    with store.transaction():
        handlers.on_intake(
            intake(region="84", departement="69", occurred_at=datetime(2026, 3, 1, tzinfo=UTC))
        )
        handlers.on_intake(
            intake(region="84", departement="69", occurred_at=datetime(2026, 3, 5, tzinfo=UTC))
        )
    first = store.silence_seed()
    store.close()
    assert first.last_seen == {"cep-r84": datetime(2026, 3, 5, tzinfo=UTC).timestamp()}
    reopened = RouterStore(url)  # a new process: the same listening start
    try:
        assert reopened.silence_seed() == first and first.listening_since is not None
    finally:
        reopened.close()
