"""RFC 9162 (Certificate Transparency v2) Merkle tree maths: pure functions, no I/O.

* leaf hash ``SHA-256(0x00 || leaf)``, node hash ``SHA-256(0x01 || left || right)`` (section 2.1.1);
* ``MTH(D[n])`` splits at ``k``, the largest power of two smaller than ``n``;
* inclusion proofs (2.1.3) and consistency proofs (2.1.4) are generated from *perfect subtrees*: the
  node ``(level, index)`` is the hash of leaves ``[index * 2**level, (index + 1) * 2**level)``. Those are
  the nodes a store keeps, since they never change once complete. Any subtree the RFC algorithms need
  (``D[a:b]`` with ``a`` aligned) is a right fold of at most log2(n) perfect subtrees, so a proof costs
  O(log n) node reads, all known before the first read (`inclusion_nodes`, `consistency_nodes`).
* verification follows the RFC's step-by-step algorithms (2.1.3.2 and 2.1.4.2) literally.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

HASH_LEN = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) = SHA-256()

NodeId = tuple[int, int]  # (level, index) of a perfect subtree
NodeReader = Callable[[Sequence[NodeId]], Mapping[NodeId, bytes]]


class ProofError(ValueError):
    """A proof that does not verify, or a request no proof can answer; the message says why."""


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """k: the largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves, by the RFC's recursive definition (reference implementation)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(root_of(leaf_hashes[:k]), root_of(leaf_hashes[k:]))


# -- perfect subtrees ----------------------------------------------------------------------------


def perfect_cover(start: int, end: int) -> list[NodeId]:
    """The perfect subtrees that make up D[start:end], largest first, for an aligned `start`.

    `start` must be a multiple of the largest power of two <= end - start (true of every range the RFC
    algorithms visit), so the subtrees follow the binary digits of end - start.
    """
    out: list[NodeId] = []
    position, remaining = start, end - start
    for level in range(remaining.bit_length() - 1, -1, -1):
        if remaining & (1 << level):
            if position % (1 << level):
                raise ValueError(f"range [{start}, {end}) is not aligned")
            out.append((level, position >> level))
            position += 1 << level
    return out


def fold_cover(hashes: Sequence[bytes]) -> bytes:
    """MTH of an aligned range from its perfect cover (largest first): a right fold, as the split implies."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


class CompactRange:
    """The right edge of a growing tree: one perfect subtree per set bit of the size.

    Appending a leaf returns every perfect node it completes, so a store writes them with the leaf, and
    `root()` gives MTH at the current size in O(log n) without reading anything.
    """

    def __init__(self, size: int = 0, peaks: Sequence[bytes] = ()) -> None:
        if len(peaks) != bin(size).count("1"):
            raise ValueError(f"a tree of size {size} has {bin(size).count('1')} peaks, got {len(peaks)}")
        self.size = size
        self._peaks = list(peaks)  # largest first

    def append(self, leaf_hash_: bytes) -> list[tuple[NodeId, bytes]]:
        index = self.size
        created: list[tuple[NodeId, bytes]] = [((0, index), leaf_hash_)]
        current, level, i = leaf_hash_, 0, index
        while i & 1:
            current = node_hash(self._peaks.pop(), current)
            level, i = level + 1, i >> 1
            created.append(((level, i), current))
        self._peaks.append(current)
        self.size += 1
        return created

    def root(self) -> bytes:
        return fold_cover(self._peaks)

    @property
    def peaks(self) -> list[bytes]:
        return list(self._peaks)


def peak_ids(size: int) -> list[NodeId]:
    """The perfect subtrees a `CompactRange` of this size holds (to resume one from a store)."""
    return perfect_cover(0, size)


# -- proof generation from stored perfect nodes -----------------------------------------------------


def _inclusion_ranges(index: int, start: int, end: int) -> list[tuple[int, int]]:
    """The subtrees D[a:b] whose MTHs form PATH(index, D[start:end]), leaf side first (RFC 9162 2.1.3.1)."""
    out: list[tuple[int, int]] = []
    while end - start > 1:
        k = _split(end - start)
        if index - start < k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start = start + k
    out.reverse()
    return out


def _consistency_ranges(m: int, n: int) -> list[tuple[int, int]]:
    """The subtrees whose MTHs form PROOF(m, D[n]) = SUBPROOF(m, D[n], true) (RFC 9162 2.1.4.1)."""
    out: list[tuple[int, int]] = []
    start, end, complete = 0, n, True
    while True:
        size = end - start
        if m == size:
            if not complete:
                out.append((start, end))
            break
        k = _split(size)
        if m <= k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            m -= k
            start, complete = start + k, False
    out.reverse()
    return out


def _resolve(ranges: list[tuple[int, int]], read: NodeReader) -> list[bytes]:
    covers = [perfect_cover(a, b) for a, b in ranges]
    wanted = sorted({node for cover in covers for node in cover})
    found = read(wanted)
    missing = [node for node in wanted if node not in found]
    if missing:
        raise LookupError(f"tree nodes missing from the store: {missing[:5]}")
    return [fold_cover([found[node] for node in cover]) for cover in covers]


def inclusion_nodes(index: int, size: int) -> list[NodeId]:
    """Every stored node an inclusion proof needs (for a single batched read)."""
    return sorted({n for a, b in _inclusion_ranges(index, 0, size) for n in perfect_cover(a, b)})


def inclusion_proof(index: int, size: int, read: NodeReader) -> list[bytes]:
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    return _resolve(_inclusion_ranges(index, 0, size), read)


def consistency_proof(m: int, n: int, read: NodeReader) -> list[bytes]:
    if not 0 <= m <= n:
        raise ProofError(f"no consistency proof from size {m} to size {n}")
    if m == 0 or m == n:
        return []
    return _resolve(_consistency_ranges(m, n), read)


def root_at(size: int, read: NodeReader) -> bytes:
    """MTH at any past or present size, from at most log2(size) stored nodes."""
    return _resolve([(0, size)], read)[0] if size else EMPTY_ROOT


# -- verification (RFC 9162 2.1.3.2 and 2.1.4.2) ----------------------------------------------------


def _check_hashes(proof: Iterable[bytes]) -> None:
    for h in proof:
        if len(h) != HASH_LEN:
            raise ProofError(f"proof element of {len(h)} bytes, expected {HASH_LEN}")


def root_from_inclusion(leaf_hash_: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that `proof` leads to from leaf `index` of a tree of `size` (RFC 9162 2.1.3.2's
    computation); ProofError when the proof cannot be one of such a tree."""
    _check_hashes([leaf_hash_, *proof])
    if index >= size or index < 0:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf_hash_
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(leaf_hash_: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Raise ProofError unless `proof` shows leaf `index` with this hash is in the tree of `root`."""
    _check_hashes([root])
    if root_from_inclusion(leaf_hash_, index, size, proof) != root:
        raise ProofError("inclusion proof does not lead to the expected root")


def batch_proofs(leaf_hashes: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """The root of a tree of these leaves and every leaf's inclusion proof (RFC 9162 PATH, leaf side
    first), each node hashed once: what a producer signing a batch gives each message."""
    if not leaf_hashes:
        raise ProofError("a tree of no leaves has no inclusion proofs")
    paths: list[list[bytes]] = [[] for _ in leaf_hashes]

    def subtree(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return leaf_hashes[lo]
        k = _split(hi - lo)
        left, right = subtree(lo, lo + k), subtree(lo + k, hi)
        for i in range(lo, lo + k):
            paths[i].append(right)
        for i in range(lo + k, hi):
            paths[i].append(left)
        return node_hash(left, right)

    return subtree(0, len(leaf_hashes)), paths


def verify_consistency(m: int, n: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Raise ProofError unless `proof` shows the tree of size m and `old_root` is a prefix of the new one."""
    _check_hashes([old_root, new_root, *proof])
    if m < 0 or n < m:
        raise ProofError(f"size {n} cannot follow size {m}: a log only grows")
    if m == n:
        if proof:
            raise ProofError("equal sizes need an empty proof")
        if old_root != new_root:
            raise ProofError(f"two different roots for the same size {m}")
        return
    if m == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    path = list(proof)
    if m & (m - 1) == 0:  # m is an exact power of two
        path.insert(0, old_root)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root")
