"""No email carries anything of the person: every template of every kind, rendered from an event that
carries a pseudonym, a reason, a shared profile and a sealed contact, shows none of them; each shows
the organisations, the referral id and the link to the referral in the partner inbox."""

from __future__ import annotations

from datetime import date

import pytest

from cepbus.contract.models import ReferralStatus
from services.mailer.decisions import notices, referral_of
from services.mailer.kinds import KINDS
from services.mailer.rendering import STATUS_LABELS, Renderer
from tests.unit.mailer.conftest import NAMES, RECIPIENT, REQUESTER, personal_referral, secrets_of

BASE = "https://inbox.cep-bus.example.org"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_no_template_shows_anything_of_the_person(kind: str) -> None:
    referral = personal_referral()
    renderer = Renderer(BASE + "/", NAMES)
    found = notices(
        kind,
        str(referral.event_id),
        referral_of(referral),
        status=ReferralStatus.DECLINED,
        deadline=date(2026, 3, 9),
        days=12,
    )
    assert found
    for notice in found:
        email = renderer.render(notice)
        for part, text in {"subject": email.subject, "text": email.text, "html": email.html}.items():
            leaked = [what for what, secret in secrets_of(referral).items() if secret in text]
            assert not leaked, f"{kind} {part} shows {leaked}"
            assert referral.referral_id in text, (kind, part)
        link = f"{BASE}/referrals/{referral.referral_id}"
        assert link in email.text and f'href="{link}"' in email.html
        assert NAMES[notice.org_id].replace("'", "&#39;") in email.html
        assert "\n" not in email.subject


def test_each_kind_says_what_it_is_about() -> None:
    referral = referral_of(personal_referral())
    renderer = Renderer(BASE, NAMES)
    [new] = notices("new_referral", "e1", referral)
    [changed] = notices("status_changed", "e2", referral, status=ReferralStatus.ACCEPTED)
    [reminder] = notices("reminder", "e3", referral, deadline=date(2026, 3, 9), days=5)
    expired = notices("expired", "e4", referral, days=30)
    assert (
        f"{NAMES[REQUESTER]} a adressé une nouvelle orientation à {NAMES[RECIPIENT]}"
        in renderer.render(new).text
    )
    assert renderer.render(changed).subject == f"Orientation {referral.referral_id} : acceptée"
    assert "depuis 5 jours" in renderer.render(reminder).text
    assert "au plus tard le 09/03/2026" in renderer.render(reminder).text
    assert [n.org_id for n in expired] == [REQUESTER, RECIPIENT]
    to_requester, to_recipient = (renderer.render(n).text for n in expired)
    assert "pendant 30 jours" in to_requester and "autre organisme" in to_requester
    assert "autre organisme" not in to_recipient


def test_names_are_escaped_in_html_and_every_status_has_a_label() -> None:
    referral = referral_of(personal_referral())
    [notice] = notices("new_referral", "e1", referral)
    html = Renderer(BASE, {REQUESTER: "<script>x</script>"}).render(notice).html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert set(STATUS_LABELS) == set(ReferralStatus)


def test_a_referral_id_is_quoted_in_the_link() -> None:
    assert Renderer(BASE, {}).link("a/b c") == f"{BASE}/referrals/a%2Fb%20c"
