"""The organisation's referrals as a CSV file for a spreadsheet (issue #24): every referral it sent or
received, open or closed, one line each, with French labels, **without the person's contact**: the
server cannot read it. The export page's script (`static/export.js`) adds the contact columns
(`CONTACT_COLUMNS`) to the lines of the referrals the organisation received, from the boxes it opens in
the browser with the organisation's key, and offers that file for download.

The format is what a French spreadsheet opens as is: UTF-8 with a byte order mark (without it Excel
reads the accents as Windows-1252), `;` between fields (the decimal comma takes `,`), lines ending in
CRLF, fields quoted only when they hold a `;`, a `"` or a line break (Python's `csv.QUOTE_MINIMAL`,
which the page's script writes likewise). Dates and times are the referral's region's (Paris in
metropolitan France), as `JJ/MM/AAAA HH:MM`. A field that a spreadsheet would read as a formula (it
begins with `=`, `+`, `-`, `@`, a tab or a carriage return) is written with a leading `'`: the file
holds text other organisations wrote (OWASP, "CSV injection"). No XLSX: no spreadsheet library is a
dependency of the bus.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cepbus.contract.models import ReferralStatus
from cepbus.contract.readside import ExportedReferralView
from cepbus.reference.calendar import deadline_last_day
from services.inbox import steps
from services.inbox.container import Inbox

SEPARATOR = ";"
BOM = "\ufeff"
LINE_END = "\r\n"
MEDIA_TYPE = "text/csv; charset=utf-8"
#: What a spreadsheet takes for the start of a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

#: The server's columns, in order.
COLUMNS: tuple[str, ...] = (
    "Orientation",
    "Rôle",
    "Prescripteur",
    "Identifiant du prescripteur",
    "Destinataire",
    "Identifiant du destinataire",
    "Type de destinataire",
    "Région",
    "Personne (pseudonyme)",
    "Statut",
    "Demandée le",
    "Reçue par le bus le",
    "Mise à jour le",
    "Échéance en cours",
    "Échéance le",
    "Motif de clôture",
)
#: The columns the page's script adds in the browser, (field of fr.cepbus.ReferralContact, header), for
#: the referrals the organisation received: filled from the box it opens, empty when it cannot.
CONTACT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("last_name", "Nom"),
    ("first_name", "Prénom"),
    ("phone", "Téléphone"),
    ("email", "Courriel"),
    ("contact_preference", "Préférence de contact"),
    ("availability", "Disponibilités"),
    ("referent_name", "Référent"),
    ("referent_contact", "Contact du référent"),
)
ROLE_RECEIVED, ROLE_SENT = "reçue", "envoyée"


def cell(text: str) -> str:
    """A field as written: text a spreadsheet would take for a formula gets a leading `'`."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _datetime(ms: int | None, inbox: Inbox, region_code: str) -> str:
    return steps.french_datetime(ms, inbox.zone(region_code)).replace(" à ", " ")


def closing_reason(line: ExportedReferralView) -> str:
    """A decline's reason in French (the national list); a completion's outcome as its code."""
    code = line.closing_reason_code
    if code is None or line.referral.open:
        return ""
    if line.referral.status == ReferralStatus.DECLINED:
        return steps.label(steps.CODE_LABELS, code)  # `other` as « Autre »: the comment is not exported
    return code


def region_name(inbox: Inbox, code: str) -> str:
    try:
        return f"{inbox.reference.region(code).name} ({code})"
    except (KeyError, ValueError):
        return code


def row(inbox: Inbox, org_id: str, line: ExportedReferralView) -> list[str]:
    """One referral's line (`COLUMNS`)."""
    record = line.referral
    zone = inbox.zone(record.region_code)
    deadline = record.pending_deadline
    return [
        cell(value)
        for value in (
            record.referral_id,
            ROLE_RECEIVED if record.recipient_org_id == org_id else ROLE_SENT,
            inbox.org_name(record.requester_org_id),
            record.requester_org_id,
            inbox.org_name(record.recipient_org_id),
            record.recipient_org_id,
            steps.label(steps.KIND_LABELS, record.recipient_kind),
            region_name(inbox, record.region_code),
            record.person_pseudonym or "",
            steps.label(steps.STATUS_LABELS, record.status),
            _datetime(record.requested_at_ms, inbox, record.region_code),
            _datetime(record.received_at_ms, inbox, record.region_code),
            _datetime(record.updated_at_ms, inbox, record.region_code),
            steps.label(steps.DEADLINE_LABELS, deadline) if deadline else "",
            f"{deadline_last_day(record.pending_deadline_due_at_ms, zone):%d/%m/%Y}"
            if deadline and record.pending_deadline_due_at_ms is not None
            else "",
            closing_reason(line),
        )
    ]


def csv_text(rows: Iterable[list[str]]) -> str:
    """The file: the byte order mark, the header, the lines."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, delimiter=SEPARATOR, lineterminator=LINE_END, quoting=csv.QUOTE_MINIMAL)
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return out.getvalue()


def export_csv(inbox: Inbox, org_id: str, lines: list[ExportedReferralView]) -> str:
    """The organisation's export, as the server sends it: no contact column."""
    return csv_text(row(inbox, org_id, line) for line in lines)


@dataclass(frozen=True)
class Box:
    """A contact sealed to the organisation, as a page's script opens it (`static/contact.js`): the box
    and what it is bound to (HPKE `info`)."""

    referral_id: str
    requester_org_id: str
    recipient_org_id: str
    key_id: str
    ciphertext_b64: str
    ciphertext_sha256_hex: str


def boxes(org_id: str, lines: list[ExportedReferralView]) -> list[Box]:
    """The sealed contacts of the referrals `org_id` received (the read side gives no other; the inbox
    checks again rather than trusts)."""
    return [
        Box(
            line.referral.referral_id,
            line.referral.requester_org_id,
            line.referral.recipient_org_id,
            line.sealed_contact.recipient_key_id,
            line.sealed_contact.ciphertext_b64,
            line.sealed_contact.ciphertext_sha256_hex,
        )
        for line in lines
        if line.sealed_contact is not None and line.referral.recipient_org_id == org_id
    ]


def filename(org_id: str, now: datetime) -> str:
    """`orientations-<org>-<AAAA-MM-JJ>.csv` (an id's `:` is not a file name's)."""
    return f"orientations-{org_id.replace(':', '-')}-{now:%Y-%m-%d}.csv"
