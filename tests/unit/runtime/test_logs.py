"""Every log line of a service is JSON when not on a terminal, the stdlib loggers' (Faust, aiokafka,
kafka-python) as well as structlog's, with the service and the bound correlation id."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from cepbus.runtime.logs import configure_logging, get_logger
from cepbus.runtime.settings import ObservabilitySettings


def test_stdlib_and_structlog_lines_are_both_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("router", ObservabilitySettings(log_format="json"))
    try:
        with structlog.contextvars.bound_contextvars(correlation_id="c-1"):
            get_logger().warning("ours", detail=1)
            logging.getLogger("kafka.conn").warning("broker %s unreachable", "b1")
        logging.getLogger("aiokafka").info("not shown: stdlib loggers stay at WARNING")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    finally:
        logging.getLogger().handlers = []
        structlog.reset_defaults()
    ours, theirs = lines
    assert ours["event"] == "ours" and ours["service"] == "router" and ours["correlation_id"] == "c-1"
    assert theirs["event"] == "broker b1 unreachable" and theirs["logger"] == "kafka.conn"
    assert (
        theirs["level"] == "warning" and theirs["service"] == "router" and theirs["correlation_id"] == "c-1"
    )
    assert "timestamp" in theirs and len(lines) == 2
