"""The router after the decision: every decision recorded, the choice and its referral (consent),
the level-2 regulation check, choice reminders (injectable clock), démission-reconversion evidence,
and the router's store on SQLite and PostgreSQL. No broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cepbus.contract import codec
from cepbus.contract.models import (
    BreachKind,
    Choice,
    ChoiceRecorded,
    ChoiceReminderDue,
    DecisionStatus,
    IntakeDecided,
    IntakePurpose,
    IntakeRegistered,
    NoticeIssued,
    NoticeRequested,
    OrganisationKind,
    Profile,
    ReferralRequested,
    RegulationBreach,
    ServiceLevel,
    ServiceLevelStarted,
    new_envelope,
)
from cepbus.contract.topics import CHOICE_REMINDER, INTAKE_DECIDED, LEDGER_TOPICS, REGULATION_BREACH
from cepbus.reference import load_reference
from cepbus.runtime.messages import Rejected
from services.notifier.handlers import NotifierHandlers
from services.router.evidence import volet_cep_evidence
from services.router.handlers import RouterHandlers
from services.router.regulation import check_level_2, choices_overdue, shared_profile_for
from services.router.store import ChoiceRecord, RouterStore, to_ms
from tests.support.factories import intake
from tests.support.postgres import store_url

REFERENCE = load_reference()
NOTIFIER = NotifierHandlers(REFERENCE)
K = OrganisationKind
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RouterStore]:
    with (
        store_url(request.param, tmp_path / "state" / "router.db", "router_test") as url,
        RouterStore(url) as opened,
    ):
        yield opened


def router(store: RouterStore | None = None, delay_s: float = 3600.0) -> RouterHandlers:
    if store is None:
        return RouterHandlers(REFERENCE, choice_reminder_delay_s=delay_s)
    return RouterHandlers(REFERENCE, store=store, choice_reminder_delay_s=delay_s)


def choice_for(
    source: IntakeRegistered,
    decided: Choice,
    kind: K | None = None,
    *,
    consent: bool = False,
    at: datetime | None = None,
) -> ChoiceRecorded:
    return ChoiceRecorded(
        envelope=new_envelope(
            ChoiceRecorded,
            producer_org_id=source.operator_id,
            causation=source.envelope,
            occurred_at=at or source.envelope.occurred_at + timedelta(minutes=30),
        ),
        intake_event_id=str(source.event_id),
        operator_id=source.operator_id,
        region_code=source.region_code,
        choice=decided,
        chosen_operator_kind=kind,
        consent_to_share=consent,
    )


def level(source: IntakeRegistered, which: ServiceLevel, at: datetime) -> ServiceLevelStarted:
    return ServiceLevelStarted(
        envelope=new_envelope(
            ServiceLevelStarted, producer_org_id=source.operator_id, causation=source.envelope, occurred_at=at
        ),
        intake_event_id=str(source.event_id),
        operator_id=source.operator_id,
        operator_kind=source.operator_kind,
        region_code=source.region_code,
        level=which,
        channel=source.channel,
    )


def issue_notice(handlers: RouterHandlers, source: IntakeRegistered, at: datetime) -> NoticeIssued:
    """Decide, render the notice as the notifier does, date it `at`, and tell the router."""
    request = next(o.event for o in handlers.on_intake(source) if isinstance(o.event, NoticeRequested))
    notice = NOTIFIER.on_notice_requested(request)[0].event
    assert isinstance(notice, NoticeIssued)
    notice = notice.model_copy(update={"envelope": notice.envelope.model_copy(update={"occurred_at": at})})
    [delivered] = handlers.on_notice_issued(notice)  # to the operator who hands it over, only
    assert delivered.topic == f"cep.notice.inbox.{source.operator_id}" and delivered.event == notice
    return notice


# --- every decision recorded ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "status", "notice"),
    [
        ({}, DecisionStatus.DECIDED, False),
        ({"cadre": True}, DecisionStatus.DECIDED, True),
        ({"birth_year": None}, DecisionStatus.INCOMPLETE, False),
        ({"birth_year": None, "boeth": True}, DecisionStatus.INCOMPLETE, True),
    ],
)
def test_every_intake_yields_its_decision(
    profile: dict[str, Any], status: DecisionStatus, notice: bool
) -> None:
    source = intake(**profile)
    outputs = router().on_intake(source)
    decided = outputs[0].event
    assert outputs[0].topic == INTAKE_DECIDED.name and isinstance(decided, IntakeDecided)
    assert decided.status == status and decided.notice_due is notice
    assert decided.intake_event_id == str(source.event_id)
    assert decided.rules and len(decided.reasons) == len(decided.rules)
    assert decided.ruleset_version and decided.reference_version == REFERENCE.reference_version
    assert decided.operator_id == source.operator_id and decided.region_code == source.region_code
    assert (status == DecisionStatus.INCOMPLETE) == ("birth_year" in decided.missing_fields)
    requests = [o.event for o in outputs[1:]]
    assert len(requests) == int(notice)
    for request in requests:
        assert isinstance(request, NoticeRequested)
        assert request.reference_version == REFERENCE.reference_version
    assert codec.decode(codec.encode(decided)) == decided


def test_rejected_intake_is_recorded_as_rejected_and_dead_lettered() -> None:
    early = intake(region="03", departement="973", occurred_at=datetime(2020, 2, 20, 12, tzinfo=UTC))
    handlers = router()
    with pytest.raises(Rejected) as refused:
        handlers.on_intake(early)
    assert refused.value.reason == "intake_rejected" and "2020-03-01" in refused.value.detail
    [decided] = refused.value.also
    assert isinstance(decided.event, IntakeDecided)
    assert decided.event.status == DecisionStatus.REJECTED
    assert decided.event.rules == ["R-REJECT-BEFORE-OPENING"]
    assert decided.event.rejection_reason and not decided.event.notice_due
    stored = handlers.store.intake(str(early.event_id))
    assert stored is not None and stored.status == "rejected"


def test_the_runtime_sends_the_decision_then_the_dead_letter() -> None:
    from cepbus.runtime.messages import Incoming
    from cepbus.runtime.processing import EventProcessor

    early = intake(region="03", departement="973", occurred_at=datetime(2020, 2, 20, 12, tzinfo=UTC))
    message = Incoming("cep.intake.registered", 0, 7, None, codec.encode(early))
    decided, letter = EventProcessor("router", "cep-bus-router").handle(
        message, IntakeRegistered, router().on_intake
    )
    assert decided.topic == INTAKE_DECIDED.name
    assert letter.topic == "cep.deadletter" and "intake_rejected" in letter.event.reason  # type: ignore[attr-defined]


def test_the_ledger_records_the_new_regulation_topics() -> None:
    names = {spec.name for spec in LEDGER_TOPICS}
    assert {
        "cep.intake.decided",
        "cep.servicelevel.started",
        "cep.regulation.breach",
        "cep.choice.reminder",
    } <= names


# --- the choice and its referral -----------------------------------------------------------------


def test_switch_with_consent_shares_the_intake_profile() -> None:
    handlers = router()
    source = intake(cadre=True, boeth=True, region="84", departement="69")
    handlers.on_intake(source)
    [out] = handlers.on_choice(choice_for(source, Choice.SWITCH, K.CAP_EMPLOI, consent=True))
    referral = out.event
    assert isinstance(referral, ReferralRequested)
    assert referral.recipient_org_id == "cap-emploi-r84" and referral.consent_to_share
    assert referral.shared_profile == source.profile


def test_switch_without_consent_shares_nothing_not_even_boeth() -> None:
    handlers = router()
    source = intake(boeth=True)
    handlers.on_intake(source)
    [out] = handlers.on_choice(choice_for(source, Choice.SWITCH, K.CAP_EMPLOI, consent=False))
    assert isinstance(out.event, ReferralRequested)
    assert out.event.shared_profile is None and not out.event.consent_to_share
    assert b"boeth" not in codec.encode(out.event)  # not even a null-valued field name on the wire


def test_switch_for_an_intake_the_router_never_saw_still_refers_without_profile() -> None:
    source = intake(cadre=True)
    [out] = router().on_choice(choice_for(source, Choice.SWITCH, K.APEC, consent=True))
    assert isinstance(out.event, ReferralRequested)
    assert out.event.shared_profile is None and "unknown to the router" in out.event.reason


@settings(max_examples=60, deadline=None)
@given(
    boeth=st.one_of(st.none(), st.booleans()),
    cadre=st.one_of(st.none(), st.booleans()),
    consent=st.booleans(),
    kind=st.sampled_from([K.APEC, K.CAP_EMPLOI, K.FRANCE_TRAVAIL, K.MISSION_LOCALE]),
)
def test_property_a_referral_never_carries_more_than_consent_allows(
    boeth: bool | None, cadre: bool | None, consent: bool, kind: K
) -> None:
    handlers = router()
    source = intake(boeth=boeth, cadre=cadre)
    handlers.on_intake(source)
    [out] = handlers.on_choice(choice_for(source, Choice.SWITCH, kind, consent=consent))
    referral = out.event
    assert isinstance(referral, ReferralRequested)
    if consent:
        assert referral.shared_profile == source.profile
    else:
        assert referral.shared_profile is None


def test_shared_profile_for() -> None:
    profile = Profile(boeth=True, cadre=False)
    assert shared_profile_for(profile, False) is None
    assert shared_profile_for(None, True) is None
    assert shared_profile_for(profile, True) == profile


# --- level-2 regulation check --------------------------------------------------------------------


def _choice(at: datetime, decided: Choice, n: int = 0) -> ChoiceRecord:
    return ChoiceRecord(f"c{n}", "i", decided, None, False, to_ms(at))


@pytest.mark.parametrize(
    ("notice_due", "notices", "choices", "expected"),
    [
        (False, [], [], None),
        (True, [], [], BreachKind.NO_NOTICE_ISSUED),
        (True, [T0 + timedelta(days=2)], [_choice(T0, Choice.STAY)], BreachKind.NO_NOTICE_ISSUED),
        (True, [T0], [], BreachKind.NO_CHOICE_RECORDED),
        (True, [T0], [_choice(T0 + timedelta(days=2), Choice.STAY)], BreachKind.NO_CHOICE_RECORDED),
        (True, [T0], [_choice(T0 + timedelta(hours=1), Choice.UNDECIDED)], BreachKind.CHOICE_UNDECIDED),
        (
            True,
            [T0],
            [
                _choice(T0 + timedelta(hours=1), Choice.STAY),
                _choice(T0 + timedelta(hours=2), Choice.UNDECIDED, 1),
            ],
            BreachKind.CHOICE_UNDECIDED,
        ),
        (
            True,
            [T0],
            [
                _choice(T0 + timedelta(hours=1), Choice.UNDECIDED),
                _choice(T0 + timedelta(hours=2), Choice.STAY, 1),
            ],
            None,
        ),
        (True, [T0], [_choice(T0 + timedelta(hours=1), Choice.SWITCH)], None),
    ],
    ids=[
        "nothing-due",
        "no-notice",
        "notice-after-start",
        "no-choice",
        "choice-after-start",
        "undecided",
        "last-is-undecided",
        "undecided-then-stay",
        "switch",
    ],
)
def test_check_level_2(
    notice_due: bool, notices: list[datetime], choices: list[ChoiceRecord], expected: BreachKind | None
) -> None:
    breach = check_level_2(
        notice_due=notice_due,
        notices_at_ms=[to_ms(n) for n in notices],
        choices=choices,
        started_at_ms=to_ms(T0 + timedelta(days=1)),
    )
    assert (breach.kind if breach else None) == expected
    if breach:
        assert "level 2" in breach.reason


def test_level_2_without_notice_is_a_breach_and_counted() -> None:
    from prometheus_client import REGISTRY

    handlers = router()
    source = intake(cadre=True, region="52", departement="44")
    handlers.on_intake(source)
    labels = {"region": "52", "operator_kind": "regional_cep", "breach": "no_notice_issued"}
    before = REGISTRY.get_sample_value("cepbus_regulation_breaches_total", labels) or 0.0
    [out] = handlers.on_service_level(level(source, ServiceLevel.LEVEL_2, T0 + timedelta(hours=1)))
    breach = out.event
    assert out.topic == REGULATION_BREACH.name and isinstance(breach, RegulationBreach)
    assert breach.breach == BreachKind.NO_NOTICE_ISSUED and breach.region_code == "52"
    assert breach.envelope.person_pseudonym == source.envelope.person_pseudonym
    assert REGISTRY.get_sample_value("cepbus_regulation_breaches_total", labels) == before + 1
    assert codec.decode(codec.encode(breach)) == breach


def test_level_2_after_notice_and_choice_is_compliant_and_level_1_never_breaches() -> None:
    handlers = router()
    source = intake(boeth=True)
    issue_notice(handlers, source, T0 + timedelta(minutes=5))
    assert handlers.on_service_level(level(source, ServiceLevel.LEVEL_1, T0 + timedelta(minutes=1))) == []
    handlers.on_choice(choice_for(source, Choice.STAY, at=T0 + timedelta(minutes=10)))
    assert handlers.on_service_level(level(source, ServiceLevel.LEVEL_2, T0 + timedelta(days=3))) == []


def test_level_2_with_undecided_choice_is_a_breach() -> None:
    handlers = router()
    source = intake(job_seeker=True)
    issue_notice(handlers, source, T0 + timedelta(minutes=5))
    handlers.on_choice(choice_for(source, Choice.UNDECIDED, at=T0 + timedelta(minutes=10)))
    [out] = handlers.on_service_level(level(source, ServiceLevel.LEVEL_2, T0 + timedelta(days=3)))
    assert isinstance(out.event, RegulationBreach) and out.event.breach == BreachKind.CHOICE_UNDECIDED


def test_level_2_for_a_person_with_nothing_to_be_told_is_fine() -> None:
    handlers = router()
    source = intake()  # a private employee at the regional operator: no notice due
    handlers.on_intake(source)
    assert handlers.on_service_level(level(source, ServiceLevel.LEVEL_2, T0 + timedelta(hours=1))) == []


def test_service_level_for_an_unknown_intake_is_rejected() -> None:
    with pytest.raises(Rejected, match="unknown_intake"):
        router().on_service_level(level(intake(), ServiceLevel.LEVEL_2, T0))


def test_replayed_level_2_gives_the_same_breach_id() -> None:
    handlers = router()
    source = intake(cadre=True)
    handlers.on_intake(source)
    started = level(source, ServiceLevel.LEVEL_2, T0 + timedelta(hours=1))
    first, again = handlers.on_service_level(started), handlers.on_service_level(started)
    assert first[0].event.event_id == again[0].event.event_id


# --- reminders -----------------------------------------------------------------------------------


def test_a_missing_choice_gets_one_reminder_after_the_delay() -> None:
    handlers = router(delay_s=3600)
    waiting, answered, quiet = intake(cadre=True), intake(boeth=True), intake()
    for source in (waiting, answered):
        issue_notice(handlers, source, T0)
    handlers.on_intake(quiet)  # no notice due: never reminded
    handlers.on_choice(choice_for(answered, Choice.STAY, at=T0 + timedelta(minutes=3)))

    assert handlers.reminders_due(T0 + timedelta(minutes=59)) == []
    now = T0 + timedelta(hours=1)
    [due] = handlers.reminders_due(now)
    reminder = due.event
    assert due.topic == CHOICE_REMINDER.name and isinstance(reminder, ChoiceReminderDue)
    assert reminder.intake_event_id == str(waiting.event_id) and reminder.delay_s == 3600
    assert reminder.notice_issued_at == T0
    assert reminder.envelope.correlation_id == waiting.envelope.correlation_id
    assert codec.decode(codec.encode(reminder)) == reminder
    # not yet marked as sent: a crash here re-sends the same event id
    assert [o.event.event_id for o in handlers.reminders_due(now)] == [reminder.event_id]
    handlers.reminders_sent([due], now)
    assert handlers.reminders_due(now + timedelta(days=30)) == []


def test_choices_overdue_is_pure() -> None:
    handlers = router()
    source = intake(cadre=True)
    issue_notice(handlers, source, T0)
    awaiting = handlers.store.awaiting_choice()
    assert [a.intake.intake_event_id for a in awaiting] == [str(source.event_id)]
    assert choices_overdue(awaiting, to_ms(T0) + 999, 1000) == []
    assert choices_overdue(awaiting, to_ms(T0) + 1000, 1000) == awaiting


# --- démission-reconversion ----------------------------------------------------------------------


def reconversion(person: str, requested: date, **profile: Any) -> IntakeRegistered:
    base = intake(person=person, **profile)
    return base.model_copy(
        update={"purpose": IntakePurpose.DEMISSION_RECONVERSION, "cep_requested_on": requested}
    )


def test_reconversion_intake_needs_its_request_date() -> None:
    base = intake()
    data = base.model_dump()
    with pytest.raises(ValueError, match="cep_requested_on"):
        IntakeRegistered(**{**data, "purpose": "demission_reconversion"})
    ok = IntakeRegistered(
        **{**data, "purpose": "demission_reconversion", "cep_requested_on": date(2026, 2, 20)}
    )
    assert codec.decode(codec.encode(ok)) == ok
    assert codec.decode(codec.encode(base)).purpose is None  # older producers: no purpose


def test_reconversion_evidence_for_the_volet_cep(store: RouterStore) -> None:
    handlers = router(store)
    person = f"p-dr-{uuid.uuid4().hex[:8]}"
    file = IntakeRegistered(
        **{
            **intake(person=person, cadre=True).model_dump(),
            "purpose": "demission_reconversion",
            "cep_requested_on": date(2026, 2, 20),
        }
    )
    other = intake(person=person)
    issue_notice(handlers, file, T0 + timedelta(minutes=5))
    handlers.on_intake(other)
    handlers.on_choice(choice_for(file, Choice.STAY, at=T0 + timedelta(minutes=20)))
    handlers.on_service_level(level(file, ServiceLevel.LEVEL_2, T0 + timedelta(days=2)))

    evidence = volet_cep_evidence(store, REFERENCE, person)
    [entry] = evidence["intakes"]
    assert entry["intake_event_id"] == str(file.event_id)
    assert entry["purpose"] == "demission_reconversion" and entry["cep_requested_on"] == "2026-02-20"
    assert entry["intake_at"] == "2026-03-02T10:00:00+00:00" and entry["decision_status"] == "decided"
    assert entry["notices_issued_at"] == ["2026-03-02T10:05:00+00:00"]
    assert entry["choices"] == [
        {"choice": "stay", "chosen_operator_kind": None, "at": "2026-03-02T10:20:00+00:00"}
    ]
    assert entry["service_levels"] == [
        {"level": "level_2", "at": "2026-03-04T10:00:00+00:00", "breach": None}
    ]
    assert len(volet_cep_evidence(store, REFERENCE, person, every_purpose=True)["intakes"]) == 2
    assert volet_cep_evidence(store, REFERENCE, "p-nobody")["intakes"] == []


def test_evidence_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cepbus_app.cli import app

    url = f"sqlite:///{tmp_path / 'router.db'}"
    store = RouterStore(url)
    person = "p-dr-cli"
    try:
        router(store).on_intake(reconversion(person, date(2026, 1, 5)))
    finally:
        store.close()
    runner = CliRunner()
    result = runner.invoke(app, ["rules", "evidence", "--person", person, "--database-url", url])
    assert result.exit_code == 0, result.output
    assert '"cep_requested_on": "2026-01-05"' in result.output
    missing = runner.invoke(app, ["rules", "evidence", "--person", "p-nobody", "--database-url", url])
    assert missing.exit_code == 1


# --- the store -----------------------------------------------------------------------------------


def test_store_writes_are_idempotent_on_event_id(store: RouterStore) -> None:
    handlers = router(store)
    source = intake(cadre=True, boeth=True)
    for _ in range(2):
        handlers.on_intake(source)
    notice = issue_notice(handlers, source, T0 + timedelta(minutes=1))
    handlers.on_notice_issued(notice)
    stay = choice_for(source, Choice.STAY)
    handlers.on_choice(stay)
    handlers.on_choice(stay)
    started = level(source, ServiceLevel.LEVEL_2, T0 + timedelta(days=1))
    handlers.on_service_level(started)
    handlers.on_service_level(started)

    record = store.intake(str(source.event_id))
    assert record is not None and record.profile == source.profile and record.notice_due
    assert record.person_pseudonym == source.envelope.person_pseudonym
    assert store.notices_at_ms(str(source.event_id)) == [to_ms(T0 + timedelta(minutes=1))]
    assert [c.choice for c in store.choices(str(source.event_id))] == [Choice.STAY]
    assert [(s.level, s.breach) for s in store.service_levels(str(source.event_id))] == [
        (ServiceLevel.LEVEL_2, None)
    ]
    assert store.known_event_ids([str(source.event_id), str(notice.event_id), str(stay.event_id), "x"]) == {
        str(source.event_id),
        str(notice.event_id),
        str(stay.event_id),
    }
    store.mark_reminded(str(source.event_id), 5)
    store.mark_reminded(str(source.event_id), 9)
    again = store.intake(str(source.event_id))
    assert again is not None and again.reminded_at_ms == 5


def test_store_survives_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'router.db'}"
    source = intake(cadre=True)
    with RouterStore(url) as first:
        router(first).on_intake(source)
    with RouterStore(url) as second:
        record = second.intake(str(source.event_id))
        assert record is not None and record.profile == source.profile


@pytest.mark.parametrize("url", ["", "sqlite:/x.db", "sqlite:///", "mysql://u:secret@h/db"])
def test_bad_store_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError) as error:
        RouterStore(url)
    assert "secret" not in str(error.value)


def test_explain_accepts_the_new_intake_fields() -> None:
    from services.router.rules_input import explain

    document = {
        "operator_kind": "regional_cep",
        "region_code": "11",
        "departement_code": "75",
        "occurred_at": "2026-03-02",
        "purpose": "demission_reconversion",
        "cep_requested_on": "2026-02-20",
        "profile": {
            "employment_status": "private_employee",
            "cadre": True,
            "young_graduate": False,
            "boeth": False,
            "birth_year": 1980,
            "job_seeker": False,
        },
    }
    assert explain(document)["inform"] == ["apec"]
    with pytest.raises(ValueError, match="cep_requested_on"):
        explain({**document, "cep_requested_on": "20/02/2026"})
    with pytest.raises(ValueError, match="purpose"):
        explain({**document, "purpose": "holiday"})
