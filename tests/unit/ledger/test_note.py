"""C2SP signed notes and checkpoints, against the reference vector of golang.org/x/mod/sumdb/note
(note_test.go / the package example: the PeterNeumann key and its published signed note). Ed25519 is
deterministic (RFC 8032), so signing that text with that key must give the published bytes."""

from __future__ import annotations

import base64

import pytest

from cepbus.auditlog.note import (
    Checkpoint,
    NoteError,
    Signer,
    Verifier,
    open_checkpoint,
    open_note,
)

GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n\u2014 PeterNeumann "
    + "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_reference_vector_signs_and_verifies_byte_for_byte() -> None:
    signer = Signer.parse(GO_SKEY)
    assert str(signer) == GO_SKEY
    assert str(signer.verifier()) == GO_VKEY
    assert str(Verifier.parse(GO_VKEY)) == GO_VKEY
    assert signer.sign(GO_TEXT) == GO_NOTE
    assert open_note(GO_NOTE, Verifier.parse(GO_VKEY)) == GO_TEXT


def test_altered_or_foreign_notes_are_refused() -> None:
    verifier = Verifier.parse(GO_VKEY)
    with pytest.raises(NoteError, match="does not verify"):
        open_note(GO_NOTE.replace("cryptography", "cryptographY"), verifier)
    impostor = Signer.generate("PeterNeumann")  # same name, another key: its key id differs
    with pytest.raises(NoteError, match="no signature by the key"):
        open_note(impostor.sign(GO_TEXT), verifier)
    with pytest.raises(NoteError, match="malformed"):
        open_note(GO_TEXT, verifier)


def test_a_forged_signature_under_our_key_id_rejects_the_note() -> None:
    verifier = Verifier.parse(GO_VKEY)
    blob = base64.b64encode(verifier.key_id + bytes(64)).decode()
    with pytest.raises(NoteError, match="does not verify"):
        open_note(f"{GO_TEXT}\n\u2014 PeterNeumann {blob}\n", verifier)


def test_cosignatures_by_other_keys_are_ignored() -> None:
    witness = Signer.generate("witness.example")
    cosigned = GO_NOTE + witness.sign(GO_TEXT).split("\n\n", 1)[1]
    assert open_note(cosigned, Verifier.parse(GO_VKEY)) == GO_TEXT
    assert open_note(cosigned, witness.verifier()) == GO_TEXT


@pytest.mark.parametrize(
    "bad",
    ["PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
     "PeterNeumann+c74f20a3+AhpC2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong algorithm byte
     "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "PeterNeumann", ""],
)  # fmt: skip
def test_malformed_verifier_keys(bad: str) -> None:
    with pytest.raises(NoteError):
        Verifier.parse(bad)


def test_checkpoint_round_trip_and_origin() -> None:
    signer = Signer.generate("cep-bus.test/ledger")
    checkpoint = Checkpoint("cep-bus.test/ledger", 8, bytes(range(32)))
    assert checkpoint.text() == f"cep-bus.test/ledger\n8\n{base64.b64encode(bytes(range(32))).decode()}\n"
    note = signer.sign(checkpoint.text())
    assert open_checkpoint(note, signer.verifier()) == checkpoint
    with pytest.raises(NoteError, match="origin"):
        open_checkpoint(note, signer.verifier(), origin="other.log")
    other = Signer.generate("other.log")
    with pytest.raises(NoteError, match="origin"):
        open_checkpoint(other.sign(Checkpoint("cep-bus.test/ledger", 8, bytes(32)).text()), other.verifier())
    for text in ["x\n08\nAAAA\n", "x\n8\n", "x\n-1\n" + base64.b64encode(bytes(32)).decode() + "\n"]:
        with pytest.raises(NoteError):
            Checkpoint.parse(text)
