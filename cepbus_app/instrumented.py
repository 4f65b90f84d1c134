"""`python -m cepbus_app.instrumented <service>`: run a service (or the `inbox`) as
`python -m services.<service>` does, with the test instruments the environment asks for. The
supervisor (`up`, the demo, the integration tests) starts services this way; a production Deployment
runs `python -m services.<service>`, which has no instruments at all.

- `CEPBUS_TRAFFIC_LOG=<file>`: every Kafka request kind the process makes is appended there
  (`cepbus.runtime.traffic.TrafficLog`), for the ACL test.
- `CEPBUS_FAULT_POINTS=<spec>`: fault points (`cepbus.runtime.faults`), refused in production.

Reading the environment for these is the composition root's job: nothing in `cepbus/` or `services/`
does it.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping

from cepbus.runtime import faults, traffic
from cepbus.runtime.instruments import FaultPoints, Instruments, KafkaRequests, NoFaults, NotRecorded
from cepbus.runtime.logs import get_logger
from cepbus.runtime.service import ServiceDefinition
from cepbus.trust.settings import TrustSettings

#: The stream services, by the name `python -m services.<name>` runs.
STREAM_SERVICES = ("router", "notifier", "ledger", "deadletters", "mailer")


def requests_from(environ: Mapping[str, str]) -> KafkaRequests:
    path = environ.get(traffic.ENV)
    return traffic.TrafficLog(path) if path else NotRecorded()


def faults_from(environ: Mapping[str, str]) -> FaultPoints:
    spec = environ.get(faults.ENV, "")
    if not spec.strip():
        return NoFaults()
    armed = faults.ArmedFaults.parse(spec)
    if TrustSettings().production:
        get_logger().warning("fault_points_ignored_in_production", points=sorted(armed.armed))
        return NoFaults()
    return armed


def instruments_from(environ: Mapping[str, str] = os.environ) -> Instruments:
    """The instruments the environment asks for; none when it asks for none."""
    return Instruments(requests_from(environ), faults_from(environ))


def service_builder(service: str) -> tuple[str, Callable[[], ServiceDefinition]]:
    """(name, build) of a stream service, imported only when it is the one to run."""
    if service not in STREAM_SERVICES:
        raise ValueError(f"unknown service {service!r}; one of {', '.join(STREAM_SERVICES)}")
    module = importlib.import_module(f"services.{service}.app")
    return module.SERVICE, module.build_service


def run_instrumented(service: str) -> None:
    if service == "inbox":  # the web inbox, whose publisher is its one Kafka client
        from services.inbox.app import main as serve_inbox

        serve_inbox(requests=requests_from(os.environ))
        return
    from cepbus.runtime.runner import run_service

    name, build = service_builder(service)
    run_service(name, build, instruments_from())


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(
            f"usage: python -m cepbus_app.instrumented {{{','.join([*STREAM_SERVICES, 'inbox'])}}}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    try:
        if args[0] != "inbox":
            service_builder(args[0])
    except ValueError as exc:
        print(f"cep-bus: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    run_instrumented(args[0])


if __name__ == "__main__":
    main()


__all__ = ["STREAM_SERVICES", "instruments_from", "main", "run_instrumented", "service_builder"]
