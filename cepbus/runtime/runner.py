"""Run one service in this process: logs, topics, the ops port, then the stream driver until stopped
(`CEPBUS_RUNTIME=batch`, the default, or `faust`).

Each service's `__main__` calls `run_service` with the function that builds its `ServiceDefinition`
(`python -m services.router`); nothing here knows which services exist. Before anything connects, the
service's trust material is checked (`cepbus.trust.modes.enforce`): in production any development
material stops the process with one line on stderr and exit code 2; in development it is logged
loudly. A configuration the service cannot start with ends the same way, never in a traceback.

The driver is imported only once chosen: the batch runtime loads no Faust (nor `mode`, nor aiokafka).
Test instruments (`cepbus.runtime.instruments`) come from the caller, never from the environment here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import pydantic

from cepbus.runtime.admin import bus_topics, ensure_topics
from cepbus.runtime.health import serve_ops
from cepbus.runtime.instruments import NO_INSTRUMENTS, Instruments
from cepbus.runtime.logs import configure_logging, get_logger
from cepbus.runtime.service import ServiceDefinition
from cepbus.runtime.settings import BrokerSettings, RuntimeSettings
from cepbus.trust.modes import TrustError, enforce
from cepbus.trust.settings import TrustSettings

#: Exit code of a service that refuses its configuration (trust material, settings, files).
CONFIGURATION_REFUSED = 2


def prepare(name: str, build: Callable[[], ServiceDefinition]) -> ServiceDefinition:
    """Build the service and check its trust material; SystemExit(2) with one line if it cannot run."""
    log = get_logger()
    try:
        definition = build()
        for problem in enforce(definition.trust_problems, TrustSettings()):
            log.warning("development_trust_material", service=name, problem=str(problem))
    except (TrustError, ValueError, OSError, pydantic.ValidationError) as exc:
        message = " ".join(str(exc).split())
        print(f"cep-bus {name}: {message}", file=sys.stderr)
        raise SystemExit(CONFIGURATION_REFUSED) from None
    return definition


def run_service(
    name: str, build: Callable[[], ServiceDefinition], instruments: Instruments = NO_INSTRUMENTS
) -> None:
    configure_logging(name)
    definition = prepare(name, build)
    broker = BrokerSettings()
    runtime_settings = RuntimeSettings()
    create = runtime_settings.create_topics
    if create is None:
        create = not TrustSettings().production
    if create:
        ensure_topics(broker, bus_topics())
    port = definition.settings.metrics_port
    runtime = runtime_settings.runtime
    try:
        if runtime == "batch":
            from cepbus.runtime.batch_driver import BatchDriver

            driver = BatchDriver(definition, broker, instruments=instruments)
            _serve_and_log(port, runtime, broker)
            driver.run()
            return
        from cepbus.runtime.faust_driver import FaustDriver, run_faust

        faust_driver = FaustDriver(definition, broker, instruments=instruments)
        _serve_and_log(port, runtime, broker)
        run_faust(faust_driver)
    finally:
        for hook in definition.on_stop:
            hook()


def _serve_and_log(port: int, runtime: str, broker: BrokerSettings) -> None:
    if port:  # /metrics, /healthz and /readyz on the service's ops port
        serve_ops(port)
    get_logger().info(
        "service_starting", runtime=runtime, bootstrap=broker.bootstrap_servers, metrics_port=port
    )


__all__ = ["CONFIGURATION_REFUSED", "prepare", "run_service"]
