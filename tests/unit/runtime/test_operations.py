"""Lag arithmetic, operator silence and the health endpoints, without a broker."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, ClassVar

from cepbus.contract.headers import CORRELATION_HEADER
from cepbus.runtime.faust_driver import incoming_from_faust
from cepbus.runtime.health import HealthState, serve_ops
from cepbus.runtime.lag import LagClock, LagGauges
from cepbus.runtime.metrics import CONSUMER_LAG_MESSAGES, CONSUMER_LAG_SECONDS, OPERATOR_LAST_EVENT_TIMESTAMP
from cepbus.runtime.silence import KnownOrganisation, OperatorSilence
from tests.conftest import free_port

TP = ("cep.notice.requested", 2)


def test_lag_seconds_is_the_age_of_the_first_high_water_mark_past_the_committed_offset() -> None:
    clock = LagClock()
    clock.observe(TP, 100.0, 10)
    clock.observe(TP, 110.0, 25)  # offsets 10..24 written between 100 and 110
    clock.observe(TP, 120.0, 40)
    lag = clock.lag(TP, committed=12, now=130.0)
    assert (lag.messages, lag.seconds) == (28, 20.0)
    assert clock.lag(TP, committed=30, now=130.0).seconds == 10.0
    caught_up = clock.lag(TP, committed=40, now=130.0)
    assert (caught_up.messages, caught_up.seconds) == (0, 0.0)


def test_lag_never_goes_negative_when_the_broker_under_reports_the_end() -> None:
    """Tansu's "latest" is the start of the last batch: a committed offset can pass it."""
    clock = LagClock()
    clock.observe(TP, 1.0, 50)
    assert clock.lag(TP, committed=57, now=2.0).messages == 0


def test_an_unchanged_high_water_mark_keeps_its_first_time() -> None:
    clock = LagClock()
    clock.observe(TP, 100.0, 10)
    clock.observe(TP, 200.0, 10)
    assert clock.lag(TP, committed=3, now=300.0).seconds == 200.0


def test_lag_gauges_drop_partitions_no_longer_assigned() -> None:
    gauges = LagGauges("lagtest")
    gauges.update({TP: 5, ("cep.choice.recorded", 0): 1}, {TP: 9, ("cep.choice.recorded", 0): 1}, 10.0)
    assert CONSUMER_LAG_MESSAGES.labels("lagtest", TP[0], "2")._value.get() == 4
    gauges.update({TP: 9}, {TP: 9}, 20.0)
    samples = {
        s.labels["topic"]
        for m in CONSUMER_LAG_SECONDS.collect()
        for s in m.samples
        if s.labels["service"] == "lagtest"
    }
    assert samples == {TP[0]}


def test_operator_silence_counts_from_start_then_from_the_last_event() -> None:
    now = [1000.0]
    orgs = [KnownOrganisation("cep-r84", "regional_cep", "84"), KnownOrganisation("apec-r84", "apec", "84")]
    silence = OperatorSilence("silencetest", orgs, clock=lambda: now[0])
    now[0] = 1500.0
    assert silence.silent_seconds("cep-r84") == 500.0
    assert silence.seen("cep-r84")
    assert not silence.seen("cep-bus-router")  # not in the directory: no new label value
    now[0] = 1600.0
    assert silence.silent_seconds("cep-r84") == 100.0
    assert silence.silent_seconds("apec-r84") == 600.0
    stamp = OPERATOR_LAST_EVENT_TIMESTAMP.labels("silencetest", "cep-r84", "regional_cep", "84")
    assert stamp._value.get() == 1500.0


def test_incoming_reads_the_correlation_header_from_either_faust_shape() -> None:
    class Message:
        topic, partition, offset, key, value = "t", 0, 1, b"k", b"v"
        headers: ClassVar[Any] = [(CORRELATION_HEADER, b"corr-1")]

    assert incoming_from_faust(Message()).header(CORRELATION_HEADER) == "corr-1"
    Message.headers = {CORRELATION_HEADER: b"corr-2"}
    assert incoming_from_faust(Message()).header(CORRELATION_HEADER) == "corr-2"
    Message.headers = None
    assert incoming_from_faust(Message()).header(CORRELATION_HEADER) is None


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_health_endpoints_follow_the_worker_state() -> None:
    state = HealthState(stall_after_s=30.0)
    port = free_port()
    server = serve_ops(port, addr="127.0.0.1", state=state)
    try:
        assert _get(port, "/healthz")[0] == 200  # starting: alive, not ready
        status, body = _get(port, "/readyz")
        assert status == 503 and json.loads(body)["detail"] == "worker not started"
        state.worker_started = True
        state.beat()
        assert _get(port, "/readyz")[0] == 503  # no assignment yet
        state.assignment = frozenset({TP})
        assert _get(port, "/readyz") == (200, '{"ok": true, "detail": "1 partitions assigned"}\n')
        assert state.last_beat is not None
        assert not state.alive(now=state.last_beat + 31)[0]  # a stuck event loop is not alive
        status, metrics = _get(port, "/metrics")
        assert status == 200 and "# TYPE cepbus_consumer_lag_seconds gauge" in metrics
        assert _get(port, "/nothing")[0] == 404
    finally:
        server.shutdown()


def test_the_notice_request_carries_the_intake_time_and_the_notifier_measures_the_delay() -> None:
    from datetime import UTC, datetime, timedelta

    from cepbus.contract.models import NoticeRequested
    from cepbus.reference import load_reference
    from services.notifier.handlers import NotifierHandlers
    from services.notifier.metrics import INTAKE_TO_NOTICE_SECONDS
    from services.router.handlers import RouterHandlers
    from tests.support.factories import intake

    reference = load_reference()
    occurred = datetime.now(UTC) - timedelta(seconds=120)
    cadre = intake(cadre=True, region="84", departement="69", occurred_at=occurred)
    [request] = [
        out.event
        for out in RouterHandlers(reference).on_intake(cadre)
        if isinstance(out.event, NoticeRequested)
    ]
    assert isinstance(request, NoticeRequested)
    assert request.intake_occurred_at == cadre.envelope.occurred_at
    histogram = INTAKE_TO_NOTICE_SECONDS.labels("84")
    sum_before = histogram._sum.get()
    NotifierHandlers(reference).on_notice_requested(request)
    assert 119.0 < histogram._sum.get() - sum_before < 180.0


def test_operator_silence_is_seeded_from_what_the_stores_remember() -> None:
    """A restart does not reset silence: the last events and the listening start come from the store."""
    from cepbus.runtime.silence import SilenceSeed

    orgs = [
        KnownOrganisation("cep-r84", "regional_cep", "84"),
        KnownOrganisation("apec-r84", "apec", "84"),
        KnownOrganisation("cap-emploi-r84", "cap_emploi", "84"),
    ]
    now = [40 * 86400.0]  # the process starts on day 40
    silence = OperatorSilence("seedtest", orgs, clock=lambda: now[0])
    silence.seed(SilenceSeed({"cep-r84": 39 * 86400.0, "apec-r84": 90 * 86400.0}, listening_since=86400.0))
    assert silence.silent_seconds("cep-r84") == 86400.0  # its last intake, a day ago
    assert silence.silent_seconds("cap-emploi-r84") == 39 * 86400.0  # never heard of since day 1
    assert silence.silent_seconds("apec-r84") == 0.0  # a date in the future never moves the baseline on
