"""Run one service as a Faust worker in this process (`cep-bus router|notifier|ledger`)."""

from __future__ import annotations

import importlib

import faust

from cepbus.admin import ensure_topics
from cepbus.health import serve_ops
from cepbus.logs import configure_logging, get_logger
from cepbus.reference import load_reference
from cepbus.settings import BrokerSettings
from cepbus.supervisor import SERVICES
from cepbus.topics import TopicSpec, catalog


def bus_topics() -> list[TopicSpec]:
    """Every topic, with one referral inbox (and rejection topic) per organisation of the directory."""
    from cepbus.directory import load_directory

    return catalog([*(org.org_id for org in load_reference().organisations()), *load_directory().org_ids()])


def run_service(name: str) -> None:
    configure_logging(name)
    broker = BrokerSettings()
    settings = SERVICES[name]()
    ensure_topics(broker, bus_topics())
    module = importlib.import_module(f"services.{name}.app")
    app: faust.App = module.build_app(settings, broker)
    if settings.metrics_port:  # /metrics, /healthz and /readyz on the service's ops port
        serve_ops(settings.metrics_port)
    get_logger().info(
        "service_starting", bootstrap=broker.bootstrap_servers, metrics_port=settings.metrics_port
    )
    worker = faust.Worker(app, loglevel="WARN", quiet=True, redirect_stdouts=False)
    worker.spinner = None  # its cursor escape codes would corrupt the JSON log lines
    worker.execute_from_commandline()
