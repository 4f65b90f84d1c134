"""The informed-choice notice ("choix éclairé") shown to a person, rendered from a `NoticeRequested`.

Pure and deterministic: the same request and reference data give the same text, hence the same
SHA-256, which `NoticeIssued.text_sha256` records so that anyone can later prove which text was
shown. So: no timestamps, no dict-order or locale dependence, and no profile data in the text (the
notice may travel on topics partners read; disability status is GDPR art. 9 health data).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cepbus.contract.models import Channel, NoticeRequested, OrganisationKind
from cepbus.contract.rule_ids import PUBLIC_AGENT_RULE
from cepbus.reference import Organisation, ReferenceData, ReferenceDataError

__all__ = ["RenderedNotice", "render_notice"]

CHANNEL_WORDING: dict[Channel, str] = {
    Channel.IN_PERSON: "en présentiel",
    Channel.PHONE: "par téléphone",
    Channel.VIDEO: "en visioconférence",
}

_KIND_NAME: dict[OrganisationKind, str] = {
    OrganisationKind.REGIONAL_CEP: "l'opérateur régional du conseil en évolution professionnelle",
    OrganisationKind.APEC: "l'Apec",
    OrganisationKind.CAP_EMPLOI: "Cap emploi",
    OrganisationKind.FRANCE_TRAVAIL: "France Travail",
    OrganisationKind.MISSION_LOCALE: "la Mission locale",
}

#: Each operator's public, worded generically: the notice never states the person's own situation.
_PUBLIC: dict[OrganisationKind, str] = {
    OrganisationKind.REGIONAL_CEP: "accompagne les salariés du secteur privé et les indépendants",
    OrganisationKind.APEC: "accompagne les cadres et les jeunes diplômés",
    OrganisationKind.CAP_EMPLOI: "accompagne les personnes en situation de handicap bénéficiaires de "
    "l'obligation d'emploi",
    OrganisationKind.FRANCE_TRAVAIL: "accompagne les demandeurs d'emploi",
    OrganisationKind.MISSION_LOCALE: "accompagne les jeunes de 16 à 25 ans",
}


@dataclass(frozen=True)
class RenderedNotice:
    """The notice text and the hex SHA-256 of its UTF-8 bytes."""

    text: str
    sha256: str


def _contact_line(org: Organisation) -> str:
    """One operator: name and public on the first line, then how to reach it, indented."""
    public = _PUBLIC.get(org.kind)
    lines = [f"- {org.name}" + (f" : {public}." if public else ".")]
    if org.phone:
        lines.append(f"  Téléphone : {org.phone}")
    if org.website:
        lines.append(f"  Site : {org.website}")
    if org.note:
        lines.append(f"  {org.note}")
    return "\n".join(lines)


def _receiving_operator(request: NoticeRequested, reference: ReferenceData) -> str:
    """The name of the operator that received the person, or its kind when it is not in the reference."""
    try:
        return reference.organisation(request.operator_id).name
    except ReferenceDataError:
        return _KIND_NAME.get(request.operator_kind, str(request.operator_kind))


def render_notice(request: NoticeRequested, reference: ReferenceData) -> RenderedNotice:
    """Render the French notice naming every operator of `request.inform` with its contact in the
    person's region. Raises `ReferenceDataError` if the region/département or an operator is unknown."""
    departement = reference.check_location(request.region_code, request.departement_code)
    region = reference.region(request.region_code)
    kinds = sorted(set(request.inform), key=lambda kind: kind.value)
    operators = [reference.operator_for(kind, region.code) for kind in kinds]
    receiver = _receiving_operator(request, reference)
    public_agent = PUBLIC_AGENT_RULE in request.rules
    at_regional = request.operator_kind == OrganisationKind.REGIONAL_CEP

    lines = [
        "Conseil en évolution professionnelle (CEP) : information pour un choix éclairé",
        "",
        f"Vous avez été accueilli(e) {CHANNEL_WORDING[request.channel]} par {receiver}, "
        f"région {region.name} (département {departement.name}, {departement.code}).",
        "",
        "Le conseil en évolution professionnelle est gratuit. Plusieurs opérateurs le délivrent "
        "(Code du travail, article L6111-6). Selon votre situation, vous pouvez aussi vous adresser à :",
        "",
        *(_contact_line(org) for org in operators),
        "",
    ]
    if public_agent:
        lines += [
            "L'opérateur régional du conseil en évolution professionnelle n'accompagne pas les agents "
            "publics. Les agents publics peuvent s'adresser aux opérateurs ci-dessus ou aux services "
            "de leur employeur public.",
            "",
        ]
    lines.append(
        "Liberté de choix de l'accompagnateur : vous restez libre de choisir l'opérateur qui vous "
        "accompagne, et votre choix sera enregistré."
    )
    if not (public_agent and at_regional):
        lines.append(
            f"Vous pouvez poursuivre avec {receiver} ou vous adresser à l'un des opérateurs ci-dessus."
        )
    lines += [
        "",
        f"Référence : règles {request.ruleset_version}, données de référence {reference.reference_version}.",
    ]
    text = "\n".join(lines) + "\n"
    return RenderedNotice(text=text, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())
