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
//   canonicalStatusBytes(update)   the bytes an organisation signs for a ReferralStatusChanged
//   signStatus(update, org, seed)  that update, with signer_org_id set and an Ed25519 signature
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

// -- signed status updates ----------------------------------------------------------------------

const SIGNATURE_TAG = 'cep-bus/referral-status/v1';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The exact bytes an organisation signs for a ReferralStatusChanged (docs/referrals.md, "Signatures"):
 * the ASCII tag `cep-bus/referral-status/v1`, then each of these fields as a 4-byte big-endian length
 * and its UTF-8 bytes (an absent value is the empty string), in this order:
 *   event_id, event_type, occurred_at (ms since the epoch, decimal), producer_org_id, correlation_id,
 *   person_pseudonym, causation_id, referral_id, status, actor_org_id, reason_code, note, signer_org_id
 * `signature` itself is not signed. The verifier re-renders the event id as a UUID (lowercase,
 * hyphenated) and the time as an integer of milliseconds, so only those forms are accepted here.
 */
function canonicalStatusBytes(update) {
  const e = update.envelope;
  if (!UUID.test(e.event_id)) throw new Error(`event_id must be a lowercase hyphenated UUID, got ${e.event_id}`);
  if (!Number.isSafeInteger(e.occurred_at)) {
    throw new Error(`occurred_at must be integer milliseconds, got ${e.occurred_at}`);
  }
  const fields = [
    e.event_id, e.event_type, String(e.occurred_at), e.producer_org_id, e.correlation_id,
    e.person_pseudonym, e.causation_id, update.referral_id, update.status, update.actor_org_id,
    update.reason_code, update.note, update.signer_org_id,
  ];
  const parts = [Buffer.from(SIGNATURE_TAG, 'ascii')];
  for (const field of fields) {
    const raw = Buffer.from(field == null ? '' : String(field), 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32BE(raw.length);
    parts.push(length, raw);
  }
  return Buffer.concat(parts);
}

// An Ed25519 private key in PKCS#8 DER is this fixed prefix followed by the raw 32-byte seed (RFC 8410).
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** A node:crypto Ed25519 private key from its raw 32-byte seed (a Buffer or 64 hex characters). */
function ed25519PrivateKey(seed) {
  const raw = Buffer.isBuffer(seed) ? seed : Buffer.from(seed, 'hex');
  if (raw.length !== 32) throw new Error(`an Ed25519 seed is 32 bytes, got ${raw.length}`);
  return crypto.createPrivateKey({key: Buffer.concat([ED25519_PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8'});
}

/** The update with `signer_org_id` set and `signature` the Ed25519 signature (64 bytes) of its
 * canonical bytes under `seed` (the signer's private key). */
function signStatus(update, signerOrgId, seed) {
  const unsigned = Object.assign({}, update, {signer_org_id: signerOrgId, signature: null});
  const signature = crypto.sign(null, canonicalStatusBytes(unsigned), ed25519PrivateKey(seed));
  return Object.assign(unsigned, {signature});
}

module.exports = {
  DecodeError,
  SIGNATURE_TAG,
  canonicalStatusBytes,
  confluentId,
  crc64Avro,
  decode,
  ed25519PrivateKey,
  encodeConfluent,
  encodeSingleObject,
  fingerprint,
  loadContract,
  parsingCanonicalForm,
  signStatus,
};
