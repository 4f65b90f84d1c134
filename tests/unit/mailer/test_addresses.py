"""The address book: a JSON object of organisation -> addresses, anything that is not an address refused
in one line that never quotes it; without a book, made-up development addresses and the trust problem
production refuses; the settings refuse a bad sender, a bad inbox URL and a user without a password."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.mailer.addresses import (
    address_book,
    is_address,
    load_address_book,
    parse_address_book,
    unknown_organisations,
)
from services.mailer.settings import MailerSettings


@pytest.mark.parametrize(
    "address",
    ["accueil@tp-ara.example.org", "a.b+c@x.fr", "notifications@cep-r84.example.invalid", "X_Y@sub.dom.org"],
)
def test_addresses_that_are_taken(address: str) -> None:
    assert is_address(address)


@pytest.mark.parametrize(
    "address",
    ["", "no-at-sign", "a@b", "a@@b.org", "a b@c.org", "<a@b.org>", "a@b.org\nBcc: x@y.org", "a@-b.org", 1],
)
def test_what_is_not_an_address(address: object) -> None:
    assert not is_address(address)


def test_a_book_is_read_in_order_once_each(tmp_path: Path) -> None:
    path = tmp_path / "addresses.json"
    path.write_text(json.dumps({"cep-r84": ["b@cep.example.org", "a@cep.example.org", "b@cep.example.org"]}))
    book = load_address_book(path)
    assert book.of("cep-r84") == ("b@cep.example.org", "a@cep.example.org") and book.of("apec-r84") == ()
    assert not book.development
    assert unknown_organisations(book, ["apec-r84"]) == ["cep-r84"]


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ({"cep-r84": ["ok@cep.example.org", "jean.dupont.at.example.org"]}, "address 2 of 'cep-r84'"),
        ({"cep-r84": "ok@cep.example.org"}, "must be a list"),
        (["ok@cep.example.org"], "must be a JSON object"),
        ({"cep-r84": [{"address": "ok@cep.example.org"}]}, "address 1 of 'cep-r84'"),
    ],
)
def test_a_bad_book_is_refused_in_one_line_that_does_not_quote_the_address(
    document: object, says: str
) -> None:
    with pytest.raises(ValueError) as refused:
        parse_address_book(json.dumps(document).encode(), "book.json")
    message = str(refused.value)
    assert says in message and "\n" not in message and "jean.dupont" not in message


def test_a_book_with_a_repeated_key_or_no_json_is_refused() -> None:
    with pytest.raises(ValueError, match="duplicate key"):
        parse_address_book(b'{"a-org": [], "a-org": []}', "book.json")
    with pytest.raises(ValueError):
        parse_address_book(b"not json", "book.json")


def test_without_a_book_development_addresses_and_a_trust_problem() -> None:
    book, problems = address_book(None, ["cep-r84", "transitions-pro-r84"])
    assert book.development and book.of("cep-r84") == ("notifications@cep-r84.example.invalid",)
    assert all(is_address(a) for org in ("cep-r84", "transitions-pro-r84") for a in book.of(org))
    [problem] = problems
    assert "CEPBUS_MAILER_ADDRESSES_PATH" in str(problem)


def test_settings_refuse_what_cannot_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="CEPBUS_MAILER_FROM_ADDRESS is not an email address"):
        MailerSettings(from_address="cep-bus <not an address>")
    with pytest.raises(ValidationError, match="INBOX_BASE_URL"):
        MailerSettings(inbox_base_url="inbox.example.org")
    assert MailerSettings(inbox_base_url="https://inbox.example.org/").inbox_base_url.endswith(".org")
    with pytest.raises(ValueError, match="without a password"):
        MailerSettings(smtp_username="cep-bus").password()
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    monkeypatch.setenv("CEPBUS_MAILER_SMTP_PASSWORD_PATH", str(password))
    monkeypatch.setenv("CEPBUS_MAILER_SMTP_USERNAME", "cep-bus")
    settings = MailerSettings()
    assert settings.password() == "s3cret"
    assert [p.what for p in settings.trust_problems()] == [
        "the mailer would send its SMTP password in clear",
        "the emails link to an inbox over plain HTTP (http://127.0.0.1:9105)",
    ]
    secure = MailerSettings(smtp_starttls=True, inbox_base_url="https://inbox.example.org")
    assert secure.trust_problems() == []
    with pytest.raises(ValueError, match="cannot read"):
        MailerSettings(smtp_password_path=tmp_path / "absent").password()
