"""The `cepbus-signature` header read two ways: the compact form the bus's signers write, without a JSON
parser, and any other JSON form of the same fields through one; both must read the same signature and
refuse the same malformed headers (another implementation may write spaces or another key order)."""

from __future__ import annotations

import json

import pytest

from cepbus.contract.statements import SIGNING_CHUNK, StatementError, StatementSignature
from tests.support.authorship import signer


def headers(count: int) -> list[bytes]:
    return [s.header() for s in signer("cep-r11").sign([bytes([i]) * 40 for i in range(count)])]


def test_the_compact_and_the_json_forms_read_the_same_signature() -> None:
    for header in headers(SIGNING_CHUNK):
        document = json.loads(header)
        spaced = json.dumps(dict(reversed(list(document.items()))), indent=1).encode()
        assert StatementSignature.parse(header) == StatementSignature.parse(spaced)


@pytest.mark.parametrize(
    "edit",
    [
        lambda h: h.replace(b'"n":', b'"n":0'),  # a leading zero: not JSON
        lambda h: h.replace(b'"i":0', b'"i":99'),  # an index outside the batch
        lambda h: h.replace(b'"v":1', b'"v":2'),
        lambda h: h[:-1],  # truncated
        lambda h: h.replace(b'==","n"', b'=","n"'),  # a signature that is not 64 bytes
    ],
    ids=["leading-zero", "index", "version", "truncated", "short-signature"],
)
def test_a_malformed_header_is_refused_whichever_way_it_is_read(edit: object) -> None:
    [header] = headers(1)
    edited = edit(header)  # type: ignore[operator]
    assert edited != header
    with pytest.raises(StatementError) as refused:
        StatementSignature.parse(edited)
    assert refused.value.reason == "malformed_signature"


def test_the_signers_cut_their_batches_at_the_signing_chunk() -> None:
    signatures = signer("cep-r11").sign([bytes([i]) * 40 for i in range(SIGNING_CHUNK * 2 + 3)])
    assert [s.size for s in signatures] == [SIGNING_CHUNK] * (2 * SIGNING_CHUNK) + [3] * 3
    assert max(len(s.path) for s in signatures) == 4  # 16 = 2**4
    assert len({s.signature for s in signatures}) == 3
