"""The address book: which email addresses each organisation of the directory is written to.

The signed directory has no email addresses (it is about keys and topics, and is public), so the mailer
reads its own file, `CEPBUS_MAILER_ADDRESSES_PATH`: a JSON object mapping an organisation id to the list
of its addresses. A file with anything that is not an email address is refused at start, with one line
that names the organisation and the position of the address (never the address: it may be someone's).

Without a file, in development only, every organisation of the directory gets a made-up address
(`notifications@<org id>.example.invalid`: `.invalid` can never be delivered, RFC 2606), listed as a
trust problem so that production refuses to start without a real book.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path

from cepbus.trust.modes import TrustProblem
from cepbus.untrusted_json import loads_strict, read_capped

#: An address as the mailer accepts it: a plain addr-spec, dot-atom local part and a domain of DNS labels
#: (stricter than RFC 5322 on purpose: no quoted local parts, no address literals, no comments).
ADDRESS = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)
ADDRESS_MAX_LENGTH = 254
ADDRESS_BOOK_MAX_BYTES = 4 * 1024 * 1024
#: The development address of an organisation: undeliverable anywhere but a test SMTP server.
DEVELOPMENT_ADDRESS = "notifications@{org_id}.example.invalid"


def is_address(value: object) -> bool:
    return isinstance(value, str) and len(value) <= ADDRESS_MAX_LENGTH and ADDRESS.match(value) is not None


def check_address(value: str, what: str, *, display_name: bool = False) -> str:
    """The bare address of `value` (with `display_name`, `Name <address>` is taken too); ValueError naming
    `what`, not the value, otherwise."""
    bare = value
    if display_name:
        _, bare = parseaddr(value)
    if "\n" in value or "\r" in value or not is_address(bare):
        raise ValueError(f"{what} is not an email address")
    return bare


@dataclass(frozen=True)
class AddressBook:
    """Organisation id -> its addresses, in the order given. `development`: made up, not a real book."""

    addresses: Mapping[str, tuple[str, ...]]
    development: bool = False

    def of(self, org_id: str) -> tuple[str, ...]:
        return self.addresses.get(org_id, ())

    def __len__(self) -> int:
        return len(self.addresses)


def parse_address_book(data: bytes, source: str) -> AddressBook:
    """The book in `data` (JSON: {"org-id": ["address", ...]}); ValueError with one line otherwise."""
    document = loads_strict(data, max_depth=4)
    if not isinstance(document, dict):
        raise ValueError(f"{source}: the address book must be a JSON object (organisation id -> addresses)")
    book: dict[str, tuple[str, ...]] = {}
    for org_id, addresses in document.items():
        if not isinstance(addresses, list):
            raise ValueError(f"{source}: the addresses of {org_id[:64]!r} must be a list")
        for position, address in enumerate(addresses, start=1):
            if not is_address(address):
                raise ValueError(f"{source}: address {position} of {org_id[:64]!r} is not an email address")
        book[org_id] = tuple(dict.fromkeys(addresses))  # one email per address, in the order given
    return AddressBook(book)


def load_address_book(path: Path) -> AddressBook:
    return parse_address_book(read_capped(path, ADDRESS_BOOK_MAX_BYTES, "address book"), str(path))


def development_address_book(org_ids: Iterable[str]) -> AddressBook:
    return AddressBook(
        {org_id: (DEVELOPMENT_ADDRESS.format(org_id=org_id),) for org_id in org_ids}, development=True
    )


def address_book(path: Path | None, org_ids: Iterable[str]) -> tuple[AddressBook, list[TrustProblem]]:
    """The book at `path`, or the development one (and the trust problem production refuses)."""
    if path is not None:
        return load_address_book(path), []
    problem = TrustProblem(
        "the mailer writes to made-up development addresses (notifications@<org>.example.invalid)",
        "set CEPBUS_MAILER_ADDRESSES_PATH to the address book (JSON: organisation id -> addresses)",
    )
    return development_address_book(org_ids), [problem]


def unknown_organisations(book: AddressBook, known: Iterable[str]) -> list[str]:
    """Organisations of the book the directory does not list (a typo, or one that left): never written to."""
    return sorted(set(book.addresses) - set(known))


__all__ = [
    "DEVELOPMENT_ADDRESS",
    "AddressBook",
    "address_book",
    "check_address",
    "development_address_book",
    "is_address",
    "load_address_book",
    "parse_address_book",
    "unknown_organisations",
]
