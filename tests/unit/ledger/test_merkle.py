"""RFC 9162 Merkle maths against published test vectors.

Source of the vectors: transparency-dev/merkle (the Go reference implementation that Trillian and
certificate-transparency-go use), `proof/verify_test.go`: the 8 leaves, the roots of the trees of
sizes 1..8, and the inclusion and consistency proofs (that file's inclusion vectors count leaves
from 1; they are converted to 0-based indexes here). https://github.com/transparency-dev/merkle
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cepbus.auditlog.merkle import (
    EMPTY_ROOT,
    CompactRange,
    NodeId,
    ProofError,
    consistency_proof,
    inclusion_nodes,
    inclusion_proof,
    leaf_hash,
    node_hash,
    peak_ids,
    root_at,
    root_of,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip
ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]  # fmt: skip


def h(*hexes: str) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


INCLUSION = [  # (0-based index, tree size, proof)
    (0, 1, []),
    (0, 8, h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")),
    (5, 8, h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")),
    (2, 3, h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (1, 5, h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")),
]  # fmt: skip

CONSISTENCY = [  # (old size, new size, proof)
    (1, 1, []),
    (1, 8, h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")),
    (6, 8, h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")),
    (2, 5, h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")),
    (6, 7, h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")),
]  # fmt: skip


class NodeStore:
    """Perfect nodes as a store keeps them, filled by CompactRange; counts reads to prove O(log n)."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.nodes: dict[NodeId, bytes] = {}
        self.tree = CompactRange()
        self.reads = 0
        for leaf in leaves:
            self.nodes.update(self.tree.append(leaf_hash(leaf)))

    def read(self, ids: list[NodeId] | tuple[NodeId, ...]) -> dict[NodeId, bytes]:
        self.reads += len(ids)
        return {i: self.nodes[i] for i in ids if i in self.nodes}


def test_hash_prefixes() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    assert root_of([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("size", range(1, 9))
def test_published_roots(size: int) -> None:
    hashes = [leaf_hash(leaf) for leaf in LEAVES[:size]]
    assert root_of(hashes) == ROOTS[size - 1]
    store = NodeStore(LEAVES[:size])
    assert store.tree.root() == ROOTS[size - 1]
    assert root_at(size, store.read) == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_published_inclusion_proofs(index: int, size: int, proof: list[bytes]) -> None:
    store = NodeStore(LEAVES)  # a bigger tree: proofs for past sizes come from the same stored nodes
    assert inclusion_proof(index, size, store.read) == proof
    verify_inclusion(leaf_hash(LEAVES[index]), index, size, proof, ROOTS[size - 1])


@pytest.mark.parametrize(("m", "n", "proof"), CONSISTENCY)
def test_published_consistency_proofs(m: int, n: int, proof: list[bytes]) -> None:
    store = NodeStore(LEAVES)
    assert consistency_proof(m, n, store.read) == proof
    verify_consistency(m, n, ROOTS[m - 1], ROOTS[n - 1], proof)


def _inclusion_probes(index: int, size: int, proof: list[bytes]) -> list[tuple[int, int, bytes, list[bytes]]]:
    """Corruptions the reference tests also try: each must fail."""
    root = ROOTS[size - 1]
    probes = [
        (index - 1, size, root, proof), (index + 1, size, root, proof), (index ^ 2, size, root, proof),
        (index, size * 2, root, proof), (index, size // 2, root, proof),
        (index, size, EMPTY_ROOT, proof), (index, size, root, [*proof, root]),
        (index, size, root, [root, *proof]),
    ]  # fmt: skip
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
        probes.append((index, size, root, bad))
    if proof:
        probes.append((index, size, root, proof[:-1]))
    return probes


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION[1:])
def test_corrupted_inclusion_proofs_fail(index: int, size: int, proof: list[bytes]) -> None:
    for i, s, root, p in _inclusion_probes(index, size, proof):
        with pytest.raises(ProofError):
            verify_inclusion(leaf_hash(LEAVES[index]), i, s, p, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(b"WrongLeaf"), index, size, proof, ROOTS[size - 1])


@pytest.mark.parametrize(("m", "n", "proof"), CONSISTENCY[1:])
def test_corrupted_consistency_proofs_fail(m: int, n: int, proof: list[bytes]) -> None:
    r1, r2 = ROOTS[m - 1], ROOTS[n - 1]
    probes = [
        (m - 1, n, r1, r2, proof), (m + 1, n, r1, r2, proof), (m ^ 2, n, r1, r2, proof),
        (m, n * 2, r1, r2, proof), (m, n // 2, r1, r2, proof), (m, n, r2, r1, proof),
        (m, n, r1, r2, []), (m, n, r1, r2, [*proof, r1]), (m, n, r1, r2, [r2, *proof]),
        (m, n, r1, r2, [proof[0], *proof]), (m, n, r1, r2, proof[:-1]),
    ]  # fmt: skip
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
        probes.append((m, n, r1, r2, bad))
    for pm, pn, p1, p2, p in probes:
        with pytest.raises(ProofError):
            verify_consistency(pm, pn, p1, p2, p)


def test_trivial_consistency_cases() -> None:
    verify_consistency(0, 5, EMPTY_ROOT, ROOTS[4], [])
    verify_consistency(3, 3, ROOTS[2], ROOTS[2], [])
    with pytest.raises(ProofError, match="different roots"):
        verify_consistency(3, 3, ROOTS[2], ROOTS[3], [])
    with pytest.raises(ProofError, match="only grows"):
        verify_consistency(4, 3, ROOTS[3], ROOTS[2], [])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), data=st.data())
def test_every_proof_from_stored_nodes_verifies(n: int, data: st.DataObject) -> None:
    leaves = [i.to_bytes(4, "big") for i in range(n)]
    store = NodeStore(leaves)
    hashes = [leaf_hash(leaf) for leaf in leaves]
    size = data.draw(st.integers(1, n))
    index = data.draw(st.integers(0, size - 1))
    root = root_of(hashes[:size])
    assert root_at(size, store.read) == root
    store.reads = 0
    proof = inclusion_proof(index, size, store.read)
    assert store.reads == len(inclusion_nodes(index, size)) <= 2 * size.bit_length() ** 2
    verify_inclusion(hashes[index], index, size, proof, root)
    m = data.draw(st.integers(0, size))
    verify_consistency(m, size, root_of(hashes[:m]), root, consistency_proof(m, size, store.read))


def test_compact_range_resumes_from_its_peaks() -> None:
    store = NodeStore(LEAVES[:6])
    resumed = CompactRange(6, [store.nodes[i] for i in peak_ids(6)])
    for leaf in LEAVES[6:]:
        resumed.append(leaf_hash(leaf))
    assert resumed.root() == ROOTS[7]


def test_proof_requests_out_of_range_are_refused() -> None:
    store = NodeStore(LEAVES)
    with pytest.raises(ProofError):
        inclusion_proof(8, 8, store.read)
    with pytest.raises(ProofError):
        consistency_proof(5, 4, store.read)
    with pytest.raises(LookupError, match="missing"):
        inclusion_proof(0, 16, store.read)
