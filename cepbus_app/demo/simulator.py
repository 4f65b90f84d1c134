"""A seedable simulator of operator information systems: realistic intakes and choices.

Regions are weighted by population; about 12 % cadres, 6 % BOETH, some job seekers, young people
and public agents, so that every public of the regulation shows up in a demo-sized run. A few
profiles lack a field (incomplete decisions), a few intakes predate their region's opening (rejected),
some are démission-reconversion files; some people record no choice; levels of service follow,
a few level-2 starts before the notice or after an undecided choice (regulation breaches).
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from cepbus.contract.models import (
    Channel,
    Choice,
    ChoiceRecorded,
    EmploymentStatus,
    IntakePurpose,
    IntakeRegistered,
    NoticeRequested,
    OrganisationKind,
    Profile,
    ServiceLevel,
    ServiceLevelStarted,
    new_envelope,
)
from cepbus.reference import ReferenceData
from cepbus.reference.sites import SiteRegistry, load_sites

# Where people enter: mostly the regional operator (the bus's reason to be), some elsewhere.
_OPERATOR_KINDS = (
    (OrganisationKind.REGIONAL_CEP, 0.80),
    (OrganisationKind.APEC, 0.06),
    (OrganisationKind.CAP_EMPLOI, 0.04),
    (OrganisationKind.FRANCE_TRAVAIL, 0.06),
    (OrganisationKind.MISSION_LOCALE, 0.04),
)
_STATUSES = (
    (EmploymentStatus.PRIVATE_EMPLOYEE, 0.72),
    (EmploymentStatus.SELF_EMPLOYED, 0.09),
    (EmploymentStatus.PUBLIC_AGENT, 0.05),
    (EmploymentStatus.JOB_SEEKER, 0.10),
    (EmploymentStatus.NOT_EMPLOYED, 0.04),
)
_CHANNELS = ((Channel.IN_PERSON, 0.55), (Channel.PHONE, 0.30), (Channel.VIDEO, 0.15))
_CHOICES = ((Choice.STAY, 0.55), (Choice.SWITCH, 0.30), (Choice.UNDECIDED, 0.15))
#: Share of profiles with one unknown field (decided "incomplete" when the rules need it).
INCOMPLETE_SHARE = 0.03
#: Share of private employees who come for a démission-reconversion project.
RECONVERSION_SHARE = 0.04
#: Share of intakes dated before their region opened (rejected, dead-lettered, recorded).
EARLY_SHARE = 0.004
#: Share of notices after which no choice is recorded.
NO_CHOICE_SHARE = 0.06
#: Of the level-2 starts of people who had to be informed, the share started before the notice.
EARLY_LEVEL_2_SHARE = 0.1


T = TypeVar("T")


def _pick(rng: random.Random, weighted: tuple[tuple[T, float], ...]) -> T:
    values = [value for value, _ in weighted]
    return rng.choices(values, weights=[weight for _, weight in weighted], k=1)[0]


#: How people spread over a département's registered sites (the first busiest; the last sometimes
#: receives nobody in a short run, as the audit's "sites without intake" expects to find).
SITE_WEIGHTS = (8.0, 4.0, 2.0, 1.0, 0.5, 0.1)


@dataclass
class Simulator:
    reference: ReferenceData
    seed: int = 0
    now: datetime | None = None
    sites: SiteRegistry | None = None

    def __post_init__(self) -> None:
        self.clock = self.now or datetime.now(UTC)
        self.rng = random.Random(self.seed)
        # ids are those of one run (the seed and the clock): two runs never share an id, whatever they
        # publish, so the ledger never sees one id with two contents; the people's profiles follow the seed
        self._run_mask = random.Random(f"{self.seed}/{self.clock.isoformat()}").getrandbits(128)
        regions = sorted(self.reference.regions.values(), key=lambda region: region.code)
        self._regions = regions
        self._region_weights = [region.population for region in regions]
        self._sites: dict[tuple[str, str], list[str]] = {}
        for site in (self.sites or load_sites()).sites():
            self._sites.setdefault((site.operator_id, site.departement_code), []).append(site.site_id)

    def site_for(self, operator_id: str, departement_code: str, person: str) -> str | None:
        """The registered site the person is received at (by the person's id, so the profile draws of a
        seed stay the same), or None when the operator declared none there."""
        sites = self._sites.get((operator_id, departement_code))
        if not sites:
            return None
        weights = [SITE_WEIGHTS[min(i, len(SITE_WEIGHTS) - 1)] for i in range(len(sites))]
        point = int.from_bytes(hashlib.sha256(person.encode()).digest()[:8]) / 2**64 * sum(weights)
        for site_id, weight in zip(sites, weights, strict=True):
            point -= weight
            if point < 0:
                return site_id
        return sites[-1]

    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128) ^ self._run_mask, version=4)

    def profile(self, year: int) -> Profile:
        rng = self.rng
        status = _pick(rng, _STATUSES)
        age = int(min(max(rng.gauss(40, 11), 16), 66))
        profile = Profile(
            employment_status=status,
            cadre=rng.random() < 0.12,
            young_graduate=age <= 26 and rng.random() < 0.25,
            boeth=rng.random() < 0.065,
            birth_year=year - age,
            job_seeker=status == EmploymentStatus.JOB_SEEKER,
        )
        if rng.random() < INCOMPLETE_SHARE:  # the operator did not fill one field in
            unknown = rng.choice(sorted(Profile.model_fields))
            profile = profile.model_copy(update={unknown: None})
        return profile

    def intake(self) -> IntakeRegistered:
        rng = self.rng
        region = rng.choices(self._regions, weights=self._region_weights, k=1)[0]
        departement = rng.choice(sorted(region.departements))
        kind = _pick(rng, _OPERATOR_KINDS)
        operator = self.reference.operator_for(kind, region.code)
        person = f"p-{rng.getrandbits(64):016x}"
        occurred = self.clock - timedelta(seconds=rng.randint(0, 3600))
        if rng.random() < EARLY_SHARE:  # before the regional CEP service opened: rejected
            occurred = datetime(2019, 12, 1, 9, tzinfo=UTC) + timedelta(minutes=rng.randint(0, 40_000))
        profile = self.profile(occurred.year)
        reconversion = (
            profile.employment_status == EmploymentStatus.PRIVATE_EMPLOYEE
            and rng.random() < RECONVERSION_SHARE
        )
        return IntakeRegistered(
            envelope=new_envelope(
                IntakeRegistered,
                producer_org_id=operator.org_id,
                person_pseudonym=person,
                event_id=self._uuid(),
                correlation_id=str(self._uuid()),
                occurred_at=occurred,
            ),
            operator_id=operator.org_id,
            operator_kind=operator.kind,
            region_code=region.code,
            departement_code=departement,
            reception_site=f"{operator.name} — site {rng.randint(1, 40)}",
            channel=_pick(rng, _CHANNELS),
            profile=profile,
            purpose=IntakePurpose.DEMISSION_RECONVERSION if reconversion else None,
            cep_requested_on=(occurred.date() - timedelta(days=rng.randint(0, 30))) if reconversion else None,
            reception_site_id=self.site_for(operator.org_id, departement, person),
        )

    def intakes(self, count: int) -> Iterator[IntakeRegistered]:
        for _ in range(count):
            yield self.intake()

    def choice(self, intake: IntakeRegistered, notice: NoticeRequested) -> ChoiceRecorded:
        """The person's choice after the notice: stay, switch to one operator named in it, or undecided."""
        choice = _pick(self.rng, _CHOICES if notice.inform else _CHOICES[::2])  # nobody to switch to
        chosen = self.rng.choice(sorted(notice.inform)) if choice == Choice.SWITCH else None
        return ChoiceRecorded(
            envelope=new_envelope(
                ChoiceRecorded,
                producer_org_id=intake.operator_id,
                causation=intake.envelope,
                event_id=self._uuid(),
                occurred_at=intake.envelope.occurred_at + timedelta(minutes=self.rng.randint(5, 90)),
            ),
            intake_event_id=str(intake.event_id),
            operator_id=intake.operator_id,
            region_code=intake.region_code,
            choice=choice,
            chosen_operator_kind=chosen,
            consent_to_share=self.rng.random() < 0.7,
        )

    def records_no_choice(self) -> bool:
        """Whether the operator records no choice after this notice (the person has not chosen)."""
        return self.rng.random() < NO_CHOICE_SHARE

    def service_levels(
        self, intake: IntakeRegistered, notice_due: bool, choice: ChoiceRecorded | None
    ) -> list[ServiceLevelStarted]:
        """Levels of service at the intake's operator. Level 1 soon after the intake for most people;
        level 2 for some, days after the simulated clock (so after the notice, whenever the notifier
        issues it), or, for a few people who had to be informed, two minutes after the intake: before
        any notice, a breach. Someone who chose another operator is served there, not here."""
        rng = self.rng
        if choice is not None and choice.choice == Choice.SWITCH:
            return []
        levels: list[tuple[ServiceLevel, datetime]] = []
        start = intake.envelope.occurred_at
        if rng.random() < 0.6:
            levels.append((ServiceLevel.LEVEL_1, start + timedelta(minutes=10)))
        if rng.random() < 0.35:
            early = notice_due and rng.random() < EARLY_LEVEL_2_SHARE
            when = start + timedelta(minutes=2) if early else self.clock + timedelta(days=rng.randint(1, 20))
            levels.append((ServiceLevel.LEVEL_2, when))
        return [
            ServiceLevelStarted(
                envelope=new_envelope(
                    ServiceLevelStarted,
                    producer_org_id=intake.operator_id,
                    causation=intake.envelope,
                    event_id=self._uuid(),
                    occurred_at=when,
                ),
                intake_event_id=str(intake.event_id),
                operator_id=intake.operator_id,
                operator_kind=intake.operator_kind,
                region_code=intake.region_code,
                level=level,
                channel=intake.channel,
            )
            for level, when in levels
        ]
