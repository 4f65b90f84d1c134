// The cep-bus contract from a non-Python client's point of view: everything here is derived from
// `schemas/avro/*.avsc` and the documentation (docs/contract.md, docs/referrals.md), never from the
// Python code or from bytes it produced.
//
//   loadContract(dir)              every .avsc of the folder in one avsc registry, indexed by
//                                  CRC-64-AVRO fingerprint and by Confluent schema id
//   parsingCanonicalForm(type)     the Avro specification's Parsing Canonical Form of a type
//   crc64Avro(bytes), fingerprint(type), confluentId(type)
//   decode(contract, buf)          either framing -> {type, value, framing, writer}
//   encodeSingleObject(type, v)    C3 01 | 8-byte LE fingerprint | Avro binary body
//   encodeConfluent(type, v)       00 | 4-byte BE schema id | Avro binary body
//   statementOf(contract, buf)     a message's statement: its single-object bytes (either framing)
//   statementDigest(S), leafHash(d), nodeHash(l, r), batchTree(leaves), rootFromPath(...),
//   signedMessage(n, root)         the statement signature's pieces (docs/contract.md)
//   statementSigner(org, seed), signStatements(signer, statements)
//                                  one Ed25519 signature per batch; each message's header value
//   parseStatementHeader(raw), verifyStatement(S, header, keys, {at})
//                                  a received header, checked against the keys one trusts
//   directoryKeys(document), loadDirectoryKeys(file, authority)
//                                  the keys of a directory file (signed.keys): key id -> key, window;
//                                  with `authority` (parseAuthorityKey), only if it signed the file
//   verifyAuthor(S, header, keys, producer, {at})
//                                  verifyStatement, then the signer held to be the event's producer
//   keyId(org, raw), ed25519PrivateKey(seed), ed25519PublicKey(raw), rawPublicKey(key)
//
// Values. The registry is built without any logical type, so values are what the bytes carry:
// `timestamp-millis` fields (envelope.occurred_at, ...) are JS numbers of milliseconds since the
// epoch (exact: they stay far below 2^53), `uuid` fields (envelope.event_id) are strings, `date` fields
// are numbers of days, `bytes` are Buffers. Every union of the contract is ["null", X], so unions are
// unwrapped (`wrapUnions: false`): an optional field is `null` or its value. Records decode to avsc
// record instances (plain enough for JSON.stringify; Buffers aside).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const avro = require('avsc');

const TYPE_OPTIONS = {wrapUnions: false};  // no logicalTypes: see "Values" above

class DecodeError extends Error {
  /** Bytes that are not an event of the contract; `reason` is short and stable (as in the Python codec). */
  constructor(reason, detail) {
    super(`${reason}: ${detail}`);
    this.reason = reason;
    this.detail = detail;
  }
}

// -- loading ------------------------------------------------------------------------------------

/**
 * Load every `.avsc` of `dir` into one avsc registry. A file may reference a named type defined in
 * another file (by full name), so files are parsed in passes until all resolve; a name defined twice
 * is an error (avsc refuses to redefine a registered name). Older released versions
 * (`released/<full name>/v<N>.avsc`, self-contained) are loaded too, each in a registry of its own,
 * so that `decode` reads an event written by a producer that has not upgraded yet (unless
 * `{released: false}`).
 *
 * Returns {types, records, byFingerprint, byConfluentId, decode}:
 *   types          {full name: avsc.Type} of every named type of the folder (records and enums)
 *   records        {full name: avsc.Type} of the top-level records: the events (first field
 *                  `envelope`) and the other records framed the same way (fr.cepbus.LedgerRecord, a
 *                  ledger leaf); a bus consumer that wants events checks `type.fields[0].name`
 *   byFingerprint  Map(16-hex fingerprint as it appears in a frame -> writer Type)
 *   byConfluentId  Map(int schema id -> writer Type)
 *   decode(buf)    decode(contract, buf)
 */
function loadContract(dir, {released = true} = {}) {
  const pending = fs.readdirSync(dir).filter((f) => f.endsWith('.avsc')).sort()
    .map((file) => ({file, schema: JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'))}));
  const registry = {};
  const records = {};
  while (pending.length) {
    const before = pending.length;
    for (let i = 0; i < pending.length; i++) {
      const {file, schema} = pending[i];
      const attempt = Object.assign({}, registry);  // a failed parse leaves names behind: parse on a copy
      let type;
      try {
        type = avro.Type.forSchema(schema, Object.assign({registry: attempt}, TYPE_OPTIONS));
      } catch (err) {
        if (/undefined type name/.test(err.message)) continue;  // defined in a later file: next pass
        throw new Error(`${file}: ${err.message}`);
      }
      if (type.name !== path.basename(file, '.avsc')) {
        throw new Error(`${file} defines ${type.name}; the file must be named ${type.name}.avsc`);
      }
      Object.assign(registry, attempt);
      if (type.typeName === 'record') records[type.name] = type;
      pending.splice(i--, 1);
    }
    if (pending.length === before) {
      throw new Error(`unresolved references in ${pending.map((p) => p.file).join(', ')}`);
    }
  }
  const writers = Object.values(records);
  if (released && fs.existsSync(path.join(dir, 'released'))) {
    for (const name of fs.readdirSync(path.join(dir, 'released')).sort()) {
      if (!records[name]) continue;  // a type no longer in the contract: nothing to read it into
      const folder = path.join(dir, 'released', name);
      for (const file of fs.readdirSync(folder).filter((f) => /^v\d+\.avsc$/.test(f)).sort()) {
        const schema = JSON.parse(fs.readFileSync(path.join(folder, file), 'utf8'));
        writers.push(avro.Type.forSchema(schema, Object.assign({registry: {}}, TYPE_OPTIONS)));
      }
    }
  }
  const byFingerprint = new Map();
  const byConfluentId = new Map();
  for (const writer of writers) {
    const hex = fingerprint(writer).toString('hex');
    if (byFingerprint.has(hex)) continue;  // a released version identical to the current one
    byFingerprint.set(hex, writer);
    const id = confluentId(writer);
    if (byConfluentId.has(id)) {  // 31 bits of a 64-bit fingerprint: unlikely, but refused
      throw new Error(`${writer.name} and ${byConfluentId.get(id).name} share the schema id ${id}`);
    }
    byConfluentId.set(id, writer);
  }
  const contract = {types: registry, records, byFingerprint, byConfluentId};
  contract.decode = (buf) => decode(contract, buf);
  return contract;
}

// -- Parsing Canonical Form and fingerprints ----------------------------------------------------

/**
 * The Parsing Canonical Form (Avro specification, "Parsing Canonical Form for Schemas") of an avsc
 * type, written from the type's structure rather than taken from `type.schema()`:
 *   [PRIMITIVES] primitives as bare names; [FULLNAMES] names in full, no `namespace`;
 *   [STRIP] only name, type, fields, symbols, items, values, size (no doc, aliases, default, order,
 *   logicalType); [ORDER] those attributes in that order; [WHITESPACE] none; a named type is written
 *   in full where it first occurs (depth first) and by its full name afterwards.
 * For this contract it is byte for byte what avsc's `type.schema()` gives (without exportAttrs);
 * `schema({exportAttrs: true})`, `toJSON()` and `toString()` are NOT canonical (they keep doc,
 * defaults, logical types or write every named type by reference), and avsc's own
 * `type.fingerprint()` is MD5 (or a crypto hash), not CRC-64-AVRO.
 */
function parsingCanonicalForm(type, seen = new Set()) {
  if (avro.Type.isType(type, 'logical')) return parsingCanonicalForm(type.underlyingType, seen);
  const str = JSON.stringify;
  switch (type.typeName) {
    case 'null': case 'boolean': case 'int': case 'long':
    case 'float': case 'double': case 'bytes': case 'string':
      return str(type.typeName);
    case 'abstract:long':  // avsc's custom long representations are longs on the wire
      return '"long"';
    case 'union:unwrapped': case 'union:wrapped':
      return `[${type.types.map((t) => parsingCanonicalForm(t, seen)).join(',')}]`;
    case 'array':
      return `{"type":"array","items":${parsingCanonicalForm(type.itemsType, seen)}}`;
    case 'map':
      return `{"type":"map","values":${parsingCanonicalForm(type.valuesType, seen)}}`;
    default: break;
  }
  if (seen.has(type.name)) return str(type.name);  // a named type already written: its full name
  seen.add(type.name);
  const head = `{"name":${str(type.name)},"type":`;
  switch (type.typeName) {
    case 'enum':
      return `${head}"enum","symbols":${str(type.symbols)}}`;
    case 'fixed':
      return `${head}"fixed","size":${type.size}}`;
    case 'record': case 'error': {  // an error is a record (Apache Java's normalisation writes "record")
      const fields = type.fields.map((f) => `{"name":${str(f.name)},"type":${parsingCanonicalForm(f.type, seen)}}`);
      return `${head}"record","fields":[${fields.join(',')}]}`;
    }
    default:
      throw new Error(`no canonical form for avsc type ${type.typeName}`);
  }
}

// CRC-64-AVRO (Avro specification, "Schema Fingerprints"): a Rabin fingerprint, reflected, with
// EMPTY = 0xc15d213aa4d7a795. BigInt keeps all 64 bits (JS numbers hold only 53).
const EMPTY = 0xc15d213aa4d7a795n;
const FP_TABLE = Array.from({length: 256}, (_, i) => {
  let fp = BigInt(i);
  for (let j = 0; j < 8; j++) fp = (fp >> 1n) ^ (EMPTY & -(fp & 1n));
  return fp;
});

/** The CRC-64-AVRO fingerprint of `bytes` (a Buffer or a string, taken as UTF-8), as a BigInt. */
function crc64Avro(bytes) {
  let fp = EMPTY;
  for (const b of Buffer.from(bytes)) fp = (fp >> 8n) ^ FP_TABLE[Number((fp ^ BigInt(b)) & 0xffn)];
  return fp;
}

const fingerprints = new WeakMap();

/** The 8 fingerprint bytes of a type as a single-object frame carries them: CRC-64-AVRO of the
 * Parsing Canonical Form, little-endian (the specification's byte order). */
function fingerprint(type) {
  let fp = fingerprints.get(type);
  if (!fp) {
    fp = Buffer.alloc(8);
    fp.writeBigUInt64LE(crc64Avro(parsingCanonicalForm(type)));
    fingerprints.set(type, fp);
  }
  return fp;
}

/** The contract's Confluent schema id of a type, the one `cep-bus schema-registry` serves: the first
 * 4 fingerprint bytes as they appear in the frame, read big-endian, as a positive 31-bit integer. */
function confluentId(type) {
  return fingerprint(type).readUInt32BE(0) & 0x7fffffff;
}

// -- framing ------------------------------------------------------------------------------------

const SINGLE_OBJECT_MARKER = Buffer.from([0xc3, 0x01]);
const SINGLE_OBJECT_HEADER = 10;  // C3 01 + 8 fingerprint bytes
const CONFLUENT_MAGIC = 0x00;
const CONFLUENT_HEADER = 5;  // 00 + 4-byte schema id

/** The Avro binary body of `value` (defaults filled in for absent fields), or an error naming the
 * offending fields. */
function body(type, value) {
  let record;
  try {
    record = type.clone(value);  // fills absent fields with their defaults, and checks types
  } catch (err) {
    const problems = [];
    type.isValid(value, {errorHook: (at, any) => problems.push(`${at.join('.')}=${JSON.stringify(any)}`)});
    throw new Error(`invalid ${type.name}: ${problems.join(', ') || err.message}`);
  }
  return type.toBuffer(record);
}

/** Avro single-object encoding: C3 01 | fingerprint (8 bytes, little-endian) | body. */
function encodeSingleObject(type, value) {
  return Buffer.concat([SINGLE_OBJECT_MARKER, fingerprint(type), body(type, value)]);
}

/** Confluent Schema Registry framing: 00 | schema id (4 bytes, big-endian) | body. `schemaId`
 * defaults to the contract's id (`confluentId`); a real registry may have assigned another one. */
function encodeConfluent(type, value, schemaId = confluentId(type)) {
  const header = Buffer.alloc(CONFLUENT_HEADER);
  header.writeUInt8(CONFLUENT_MAGIC, 0);
  header.writeUInt32BE(schemaId, 1);
  return Buffer.concat([header, body(type, value)]);
}

const resolvers = new WeakMap();

/**
 * Decode a message value of either framing; the first byte tells them apart (0x00 Confluent,
 * 0xC3 single-object). An event written with a released older schema is read into the current one
 * by Avro schema resolution (new fields take their defaults). Returns {type, value, framing, writer}:
 * `type` the current type, `writer` the schema the bytes were written with, `framing`
 * 'single-object' or 'confluent'. Throws DecodeError.
 */
function decode(contract, buf) {
  if (!Buffer.isBuffer(buf)) throw new DecodeError('not_bytes', `expected a Buffer, got ${typeof buf}`);
  let writer, start, framing;
  if (buf.length >= 1 && buf[0] === CONFLUENT_MAGIC) {
    if (buf.length < CONFLUENT_HEADER) {
      throw new DecodeError('truncated_header', `${buf.length} bytes, a Confluent frame needs 5`);
    }
    const id = buf.readUInt32BE(1);
    writer = contract.byConfluentId.get(id);
    if (!writer) throw new DecodeError('unknown_schema', `schema id ${id} names no schema of the contract`);
    [start, framing] = [CONFLUENT_HEADER, 'confluent'];
  } else {
    if (buf.length < SINGLE_OBJECT_HEADER) {
      throw new DecodeError('truncated_header', `${buf.length} bytes, a frame needs at least 10`);
    }
    if (!buf.subarray(0, 2).equals(SINGLE_OBJECT_MARKER)) {
      throw new DecodeError('bad_marker', `starts with ${buf.subarray(0, 2).toString('hex')}, expected c301 or 00`);
    }
    const hex = buf.subarray(2, SINGLE_OBJECT_HEADER).toString('hex');
    writer = contract.byFingerprint.get(hex);
    if (!writer) throw new DecodeError('unknown_schema', `no schema of the contract has fingerprint ${hex}`);
    [start, framing] = [SINGLE_OBJECT_HEADER, 'single-object'];
  }
  const type = contract.records[writer.name];
  let resolver;
  if (type !== writer) {
    resolver = resolvers.get(writer);
    if (!resolver) resolvers.set(writer, resolver = type.createResolver(writer));
  }
  let value;
  try {
    value = type.fromBuffer(buf.subarray(start), resolver);  // throws on truncated or trailing bytes
  } catch (err) {
    throw new DecodeError('bad_body', `${writer.name}: ${err.message}`);
  }
  return {type, value, framing, writer};
}

// -- statement signatures (docs/contract.md, "Every statement signed by its author") ------------------
//
// An event's statement S is its single-object encoding (a Confluent frame's body re-framed as one); its
// digest d = SHA-256("cep-bus/statement/v1" 0x00 || S). An author signs the statements it sends
// together as a batch of n >= 1: leaf i = SHA-256(0x00 || d_i), the root R is the RFC 9162 Merkle tree
// hash of the leaves (n = 1: the leaf), and the Ed25519 signature covers
// "cep-bus/statement-batch/v1" 0x00 || n (8 bytes, big-endian) || R. Each message carries, in the
// Kafka header `cepbus-signature`, {"v":1,"key":<key id>,"sig":<base64>,"n":n,"i":i,"path":<base64>},
// `path` being leaf i's inclusion proof (32-byte hashes concatenated, leaf side first; empty for n = 1).

const SIGNATURE_HEADER = 'cepbus-signature';
const STATEMENT_TAG = Buffer.from('cep-bus/statement/v1\x00', 'latin1');
const BATCH_TAG = Buffer.from('cep-bus/statement-batch/v1\x00', 'latin1');
const KEY_ID_TAG = Buffer.from('cep-bus/partner-key/v1\n', 'latin1');
const MAX_BATCH = 1 << 16;  // a path of at most 16 hashes
const MAX_PATH_HASHES = 16;
const MAX_HEADER_BYTES = 2048;
const KEY_ID = /^[0-9a-f]{16}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

class StatementError extends Error {
  /** A statement signature that does not hold; `reason` is the bus's dead-letter reason for it. */
  constructor(reason, detail) {
    super(`${reason}: ${detail}`);
    this.reason = reason;
    this.detail = detail;
  }
}

const sha256 = (...parts) => crypto.createHash('sha256').update(Buffer.concat(parts)).digest();

/** The statement of a message value of either framing: its single-object bytes (a Confluent frame's
 * body behind the 10-byte header of the schema it was written with). */
function statementOf(contract, buf) {
  const {writer, framing} = decode(contract, buf);
  if (framing === 'single-object') return buf;
  return Buffer.concat([SINGLE_OBJECT_MARKER, fingerprint(writer), buf.subarray(CONFLUENT_HEADER)]);
}

/** d: SHA-256 of the tag and the single-object bytes. */
function statementDigest(singleObject) {
  return sha256(STATEMENT_TAG, singleObject);
}

/** RFC 9162 hashes: a leaf (here a statement digest) and an interior node. */
function leafHash(digest) {
  return sha256(Buffer.from([0x00]), digest);
}
function nodeHash(left, right) {
  return sha256(Buffer.from([0x01]), left, right);
}

/** k: the largest power of two strictly smaller than n (n >= 2), where RFC 9162 splits a tree. */
function split(n) {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** The RFC 9162 Merkle tree hash of these leaf hashes and each leaf's inclusion path (leaf side
 * first): what an author signing a batch gives each message. */
function batchTree(leaves) {
  if (!leaves.length) throw new Error('a batch has at least one statement');
  const paths = leaves.map(() => []);
  const subtree = (lo, hi) => {
    if (hi - lo === 1) return leaves[lo];
    const k = split(hi - lo);
    const left = subtree(lo, lo + k);
    const right = subtree(lo + k, hi);
    for (let i = lo; i < lo + k; i++) paths[i].push(right);
    for (let i = lo + k; i < hi; i++) paths[i].push(left);
    return nodeHash(left, right);
  };
  return {root: subtree(0, leaves.length), paths};
}

/** The root an inclusion path leads to from leaf `index` of a tree of `size` (RFC 9162 2.1.3.2); null
 * when it cannot be a path of such a tree. */
function rootFromPath(leaf, index, size, path) {
  if (!(Number.isInteger(index) && Number.isInteger(size) && index >= 0 && index < size)) return null;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (p.length !== 32 || sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

/** The exact bytes an author's key signs for a batch of `size` statements whose tree has `root`. */
function signedMessage(size, root) {
  const n = Buffer.alloc(8);
  n.writeBigUInt64BE(BigInt(size));
  return Buffer.concat([BATCH_TAG, n, root]);
}

// An Ed25519 key in DER is a fixed prefix followed by the raw 32 bytes (RFC 8410): PKCS#8 for a private
// key (its seed), SPKI for a public key.
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** A node:crypto Ed25519 private key from its raw 32-byte seed (a Buffer or 64 hex characters). */
function ed25519PrivateKey(seed) {
  const raw = Buffer.isBuffer(seed) ? seed : Buffer.from(String(seed), 'hex');
  if (raw.length !== 32 || (!Buffer.isBuffer(seed) && !/^[0-9a-fA-F]{64}$/.test(String(seed)))) {
    throw new Error(`an Ed25519 seed is 32 bytes (64 hex characters), got ${raw.length} bytes`);
  }
  return crypto.createPrivateKey({key: Buffer.concat([ED25519_PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8'});
}

/** A node:crypto Ed25519 public key from its raw 32 bytes (a Buffer, or base64 as the directory writes it). */
function ed25519PublicKey(raw) {
  const bytes = Buffer.isBuffer(raw) ? raw : Buffer.from(String(raw), 'base64');
  if (bytes.length !== 32) throw new Error(`an Ed25519 public key is 32 bytes, got ${bytes.length}`);
  return crypto.createPublicKey({key: Buffer.concat([ED25519_SPKI_PREFIX, bytes]), format: 'der', type: 'spki'});
}

/** The raw 32 bytes of a key's public half (a private or public KeyObject). */
function rawPublicKey(key) {
  const pub = key.type === 'private' ? crypto.createPublicKey(key) : key;
  return pub.export({format: 'der', type: 'spki'}).subarray(ED25519_SPKI_PREFIX.length);
}

/** A directory key id: 16 hex characters of SHA-256("cep-bus/partner-key/v1\n" || org id || "\n" || raw
 * public key); it binds the key to its organisation. */
function keyId(orgId, rawPublic) {
  return sha256(KEY_ID_TAG, Buffer.from(orgId, 'utf8'), Buffer.from('\n'), rawPublic).toString('hex').slice(0, 16);
}

/** The `cepbus-signature` header value of one message (compact JSON, members in this order). */
function statementHeader({keyId: key, signature, size, index, path}) {
  return JSON.stringify({
    v: 1, key, sig: signature.toString('base64'), n: size, i: index, path: Buffer.concat(path).toString('base64'),
  });
}

/** An author's signer: its organisation and its key (seed), under its directory key id. */
function statementSigner(orgId, seed) {
  const privateKey = ed25519PrivateKey(seed);
  return {orgId, privateKey, keyId: keyId(orgId, rawPublicKey(privateKey))};
}

/** One signature for these single-object statements, in the order they will be sent: for each, its
 * {keyId, signature, size, index, path, root, header}. */
function signStatements(signer, statements) {
  if (statements.length > MAX_BATCH) throw new Error(`at most ${MAX_BATCH} statements in a batch`);
  const leaves = statements.map((s) => leafHash(statementDigest(s)));
  const {root, paths} = batchTree(leaves);
  const signature = crypto.sign(null, signedMessage(leaves.length, root), signer.privateKey);
  return paths.map((path, index) => {
    const signed = {keyId: signer.keyId, signature, size: leaves.length, index, path, root};
    return Object.assign(signed, {header: statementHeader(signed)});
  });
}

/** The signature a header carries; StatementError `unsigned` (none) or `malformed_signature`. */
function parseStatementHeader(raw) {
  if (raw === undefined || raw === null || raw.length === 0) throw new StatementError('unsigned', 'no cepbus-signature header');
  const bytes = Buffer.isBuffer(raw) ? raw : Buffer.from(String(raw), 'utf8');
  const bad = (detail) => new StatementError('malformed_signature', detail);
  if (bytes.length > MAX_HEADER_BYTES) throw bad(`header of ${bytes.length} bytes (at most ${MAX_HEADER_BYTES})`);
  let doc;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw bad('the header is not JSON');
  }
  if (!doc || typeof doc !== 'object' || doc.v !== 1) throw bad('not a version 1 statement signature');
  const {key, sig, n, i, path} = doc;
  if (typeof key !== 'string' || !KEY_ID.test(key)) throw bad('key: not a key id');
  if (!Number.isInteger(n) || n < 1 || n > MAX_BATCH) throw bad(`n: a batch size from 1 to ${MAX_BATCH}`);
  if (!Number.isInteger(i) || i < 0 || i >= n) throw bad('i: an index in the batch');
  if (typeof sig !== 'string' || !BASE64.test(sig)) throw bad('sig: not base64');
  if (typeof path !== 'string' || !BASE64.test(path)) throw bad('path: not base64');
  const signature = Buffer.from(sig, 'base64');
  if (signature.length !== 64) throw bad(`sig: ${signature.length} bytes, an Ed25519 signature is 64`);
  const hashes = Buffer.from(path, 'base64');
  if (hashes.length % 32 || hashes.length > MAX_PATH_HASHES * 32) throw bad('path: at most 16 hashes of 32 bytes');
  const nodes = [];
  for (let at = 0; at < hashes.length; at += 32) nodes.push(hashes.subarray(at, at + 32));
  return {keyId: key, signature, size: n, index: i, path: nodes};
}

/** An instant of the directory (ISO-8601 with its zone: `2026-03-01T00:00:00Z`) in ms since the epoch;
 * null stays null. */
function directoryTime(text, what) {
  if (text === null || text === undefined) return null;
  if (typeof text !== 'string' || !/^\d{4}-\d{2}-\d{2}T[0-9:.]+(Z|[+-]\d{2}:\d{2})$/.test(text) ||
      Number.isNaN(Date.parse(text))) {
    throw new Error(`${what}: ${JSON.stringify(text)} is not an ISO-8601 time with its zone`);
  }
  return Date.parse(text);
}

/**
 * The keys of a directory document (docs/contract.md; `cepbus/reference/data/directory.json`, format
 * cep-bus-directory/N): a Map key id -> {orgId, keyId, publicKey, notBefore, notAfter, revokedAt} of every
 * entry of `signed.keys`, the organisations' and the bus's services' alike (times in ms since the epoch,
 * null when open). Each entry is checked as the bus checks it at load: a 32-byte Ed25519 public key whose
 * key id is derived from its organisation and raw bytes, a window that is not empty. Throws an Error
 * naming the offending entry otherwise. (The directory authority's signature over `signed` is not
 * checked here: the file is the client's configuration, as the bus's is.)
 */
function directoryKeys(document) {
  const signed = document && typeof document === 'object' ? document.signed : undefined;
  if (!signed || typeof signed !== 'object' || typeof signed.format !== 'string' ||
      !signed.format.startsWith('cep-bus-directory/')) {
    throw new Error('not a cep-bus directory (no "signed" member of format cep-bus-directory/N)');
  }
  if (!Array.isArray(signed.keys) || !signed.keys.length) throw new Error('the directory lists no keys');
  const keys = new Map();
  signed.keys.forEach((entry, i) => {
    const at = `keys[${i}]`;
    if (!entry || typeof entry !== 'object') throw new Error(`${at}: not an object`);
    const {org_id: orgId, key_id: keyIdText, public_key: publicText} = entry;
    if (typeof orgId !== 'string' || !orgId) throw new Error(`${at}: no org_id`);
    if (typeof keyIdText !== 'string' || !KEY_ID.test(keyIdText)) throw new Error(`${at}: key_id is not a key id`);
    if (typeof publicText !== 'string' || !BASE64.test(publicText)) throw new Error(`${at}: public_key is not base64`);
    const raw = Buffer.from(publicText, 'base64');
    let publicKey;
    try {
      publicKey = ed25519PublicKey(raw);
    } catch (err) {
      throw new Error(`${at} (${orgId}): ${err.message}`);
    }
    if (keyId(orgId, raw) !== keyIdText) {
      throw new Error(`${at}: key id ${keyIdText} of ${orgId} does not match its public key (${keyId(orgId, raw)})`);
    }
    const notBefore = directoryTime(entry.not_before, `${at}.not_before`);
    if (notBefore === null) throw new Error(`${at}: no not_before`);
    const notAfter = directoryTime(entry.not_after, `${at}.not_after`);
    const revokedAt = directoryTime(entry.revoked_at, `${at}.revoked_at`);
    if (notAfter !== null && notAfter <= notBefore) throw new Error(`${at}: not_after is not after not_before`);
    if (keys.has(keyIdText)) throw new Error(`${at}: key id ${keyIdText} listed twice`);
    keys.set(keyIdText, {orgId, keyId: keyIdText, publicKey, notBefore, notAfter, revokedAt});
  });
  return keys;
}

/** directoryKeys of a directory file; an Error saying which file and what is wrong otherwise. */
function loadDirectoryKeys(file, authority) {
  let document;
  try {
    document = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: ${err.code ? `cannot read it (${err.code})` : 'not JSON'}`);
  }
  try {
    const keys = directoryKeys(document);
    if (authority !== undefined) checkDirectorySignature(document, authority);
    return keys;
  } catch (err) {
    throw new Error(`${file}: ${err.message}`);
  }
}

// -- the directory authority (cepbus/reference/directory.py, cepbus/trust/keys.py) -----------------

const AUTHORITY_PREFIX = 'cep-bus-directory';
const AUTHORITY_KEY_TAG = Buffer.from('cep-bus/directory-authority-key/v1\n');

/** A pinned authority key, `cep-bus-directory+<16 hex key id>+<base64 public key>` (the form
 * `CEPBUS_DIRECTORY_AUTHORITY_KEY` takes): {keyId, key}; an Error saying what is wrong otherwise. */
function parseAuthorityKey(text) {
  const parts = String(text).trim().split('+');
  if (parts.length < 3 || parts[0] !== AUTHORITY_PREFIX) {
    throw new Error(`a pinned authority key reads ${AUTHORITY_PREFIX}+<16 hex key id>+<base64 public key>`);
  }
  const [, kid] = parts;
  const b64 = parts.slice(2).join('+');  // base64 may itself contain '+'
  if (!/^[0-9a-f]{16}$/.test(kid)) throw new Error(`its key id is 16 lowercase hex characters, got ${kid}`);
  const raw = Buffer.from(b64, 'base64');
  if (raw.length !== 32 || raw.toString('base64') !== b64) throw new Error('its public key is not 32 bytes of base64');
  const expected = crypto.createHash('sha256').update(Buffer.concat([AUTHORITY_KEY_TAG, raw])).digest('hex');
  if (expected.slice(0, 16) !== kid) {
    throw new Error(`its key id ${kid} does not match its public key: the string was altered or truncated`);
  }
  return {keyId: kid, key: ed25519PublicKey(raw)};
}

/** The bytes the authority signs: sorted keys, no whitespace, UTF-8, no floats (`canonical_bytes`). */
function canonicalJson(value, where = 'signed') {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error(`${where}: ${value} is not an integer (not canonical)`);
    return String(value);
  }
  if (Array.isArray(value)) return `[${value.map((item, i) => canonicalJson(item, `${where}[${i}]`)).join(',')}]`;
  if (typeof value === 'object') {
    const members = Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k], `${where}.${k}`)}`);
    return `{${members.join(',')}}`;
  }
  throw new Error(`${where}: not JSON`);
}

/** Throw unless one of the document's signatures is the pinned authority's over its `signed` body. */
function checkDirectorySignature(document, authority) {
  const signatures = Array.isArray(document.signatures) ? document.signatures : [];
  if (!signatures.length) throw new Error(`the directory is unsigned; the pinned authority key is ${authority.keyId}`);
  const mine = signatures.filter((s) => s && s.key_id === authority.keyId);
  if (!mine.length) {
    const others = signatures.map((s) => (s && s.key_id) || '?').join(', ');
    throw new Error(`the directory is not signed by the pinned authority key ${authority.keyId} (signed by ${others})`);
  }
  const message = Buffer.from(canonicalJson(document.signed), 'utf8');
  const good = mine.some((s) => {
    try {
      return crypto.verify(null, message, authority.key, Buffer.from(String(s.signature), 'base64'));
    } catch (err) {
      return false;
    }
  });
  if (!good) throw new Error(`the signature of the pinned authority key ${authority.keyId} does not verify: the directory was altered`);
}

/** Whether a key may sign at `at` (ms): from notBefore (included) to notAfter (excluded), never from
 * revokedAt on; a key given without a window (one pinned outright) always may. */
function keyValidAt(key, at) {
  return (key.notBefore == null || key.notBefore <= at) && (key.notAfter == null || at < key.notAfter) &&
    (key.revokedAt == null || at < key.revokedAt);
}

/**
 * Who signed these single-object bytes, per their header: {orgId, keyId, digest, root}. `keys` maps a
 * key id to {orgId, publicKey} and, for a directory's keys, its window (notBefore, notAfter, revokedAt:
 * directoryKeys); the key must be valid at `at` (ms since the epoch, default now: when the message is
 * read). StatementError (`unsigned`, `malformed_signature`, `unknown_key`, `key_not_valid`,
 * `bad_signature`) otherwise. A caller then holds the event to its signer (verifyAuthor): the key's
 * organisation must be the envelope's producer.
 */
function verifyStatement(singleObject, header, keys, {at = Date.now()} = {}) {
  const signed = parseStatementHeader(header);
  const key = keys.get(signed.keyId);
  if (!key) throw new StatementError('unknown_key', `key ${signed.keyId} is not one this client trusts`);
  if (!keyValidAt(key, at)) {
    throw new StatementError('key_not_valid', `key ${signed.keyId} of ${key.orgId} may not sign at ${new Date(at).toISOString()}`);
  }
  const digest = statementDigest(singleObject);
  const root = rootFromPath(leafHash(digest), signed.index, signed.size, signed.path);
  if (!root) throw new StatementError('bad_signature', 'the inclusion path fits no batch of that size');
  if (!crypto.verify(null, signedMessage(signed.size, root), key.publicKey, signed.signature)) {
    throw new StatementError('bad_signature', `not signed by key ${signed.keyId}`);
  }
  return {orgId: key.orgId, keyId: signed.keyId, digest, root};
}

/** verifyStatement, then the event held to its signer: the key's organisation must be `producer` (the
 * decoded event's envelope.producer_org_id), else StatementError `misattributed`. An event the router
 * passes on keeps its author's signature, so the author is whoever produced it, never the forwarder. */
function verifyAuthor(singleObject, header, keys, producer, options = {}) {
  const author = verifyStatement(singleObject, header, keys, options);
  if (author.orgId !== producer) {
    throw new StatementError('misattributed', `signed by ${author.orgId} (key ${author.keyId}) but produced as ${producer}`);
  }
  return author;
}

module.exports = {
  DecodeError,
  canonicalJson,
  checkDirectorySignature,
  parseAuthorityKey,
  SIGNATURE_HEADER,
  StatementError,
  batchTree,
  confluentId,
  crc64Avro,
  decode,
  directoryKeys,
  ed25519PrivateKey,
  ed25519PublicKey,
  encodeConfluent,
  encodeSingleObject,
  fingerprint,
  keyId,
  keyValidAt,
  leafHash,
  loadContract,
  loadDirectoryKeys,
  nodeHash,
  parseStatementHeader,
  parsingCanonicalForm,
  rawPublicKey,
  rootFromPath,
  signStatements,
  signedMessage,
  statementDigest,
  statementHeader,
  statementOf,
  statementSigner,
  verifyAuthor,
  verifyStatement,
};
