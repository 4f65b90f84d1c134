// The statement an organisation signs for a ReferralStatusChanged, rebuilt in the browser from the
// update's fields (docs/contract.md, "Every statement signed by its author"):
//
//   S = C3 01 || the writer schema's 8-byte CRC-64-AVRO fingerprint || the Avro binary body
//   d = SHA-256("cep-bus/statement/v1" || 00 || S)
//   signed message of a batch of one = "cep-bus/statement-batch/v1" || 00 || 1 (8 bytes, big-endian)
//                                      || SHA-256(00 || d)
//
// The page encodes the body itself, with the small Avro encoder below written for this one record and
// its envelope (schemas/avro/fr.cepbus.ReferralStatusChanged.avsc, fr.cepbus.Envelope.avsc, in their
// field order), rather than taking bytes from the server: what the key signs is exactly the fields the
// page shows (signedFields), so a server that would publish other bytes cannot obtain a signature of
// them. The encoder knows one writer schema (WRITER_FINGERPRINT) and refuses to sign under another:
// the same body read with another schema could say something else. tests/node/inbox-statement.js
// checks it byte for byte against fastavro.
//
// Avro binary, as used here: a long (and an int) is a zigzag varint; a string is its UTF-8 length as
// a long, then the bytes; a union is its branch index as a long, then the value; an enum its symbol's
// index; a timestamp-millis the long of milliseconds since the epoch; a record its fields in order.

/** CRC-64-AVRO of fr.cepbus.ReferralStatusChanged's Parsing Canonical Form: the schema encoded here. */
export const WRITER_FINGERPRINT = '03c4e744a2f1cc26';
export const EVENT_TYPE = 'fr.cepbus.ReferralStatusChanged';
/** fr.cepbus.ReferralStatus's symbols, in the schema's order (an enum is written as the index). */
export const STATUSES = [
  'requested', 'received', 'accepted', 'declined', 'appointment_booked', 'first_appointment_held',
  'no_show', 'completed', 'cancel_requested', 'cancelled', 'interim_update', 'unknown', 'expired',
];
const STATEMENT_TAG = 'cep-bus/statement/v1\u0000';
const BATCH_TAG = 'cep-bus/statement-batch/v1\u0000';
const MARKER = [0xc3, 0x01];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// [name, Avro type as written here], in the schemas' field order.
const ENVELOPE_FIELDS = [
  ['event_id', 'uuid'],
  ['event_type', 'string'],
  ['occurred_at', 'timestamp-millis'],
  ['producer_org_id', 'string'],
  ['correlation_id', 'string'],
  ['person_pseudonym', 'optional string'],
  ['causation_id', 'optional string'],
];
const UPDATE_FIELDS = [
  ['referral_id', 'string'],
  ['status', 'status'],
  ['actor_org_id', 'string'],
  ['reason_code', 'optional string'],
  ['note', 'optional string'],
  ['signer_org_id', 'optional string'],
  ['signature', 'null'], // ["null", "bytes"]: the in-body signature, superseded by the statement's
];

function refuse(message) {
  throw new Error(message);
}

function checkKeys(object, fields, where) {
  if (object === null || typeof object !== 'object' || Array.isArray(object)) refuse(`${where} must be an object`);
  const known = new Set(fields.map(([name]) => name));
  for (const name of Object.keys(object)) {
    if (!known.has(name)) refuse(`${where}.${name}: a field this page does not encode (schema ${WRITER_FINGERPRINT})`);
  }
}

/** [name, value] of every field of the statement, in the order it is encoded (absent = null). */
export function signedFields(update) {
  checkKeys(update, [['envelope'], ...UPDATE_FIELDS], 'update');
  checkKeys(update.envelope, ENVELOPE_FIELDS, 'envelope');
  const value = (object, name) => (object[name] === undefined ? null : object[name]);
  return [
    ...ENVELOPE_FIELDS.map(([name]) => [name, value(update.envelope, name)]),
    ...UPDATE_FIELDS.map(([name]) => [name, value(update, name)]),
  ];
}

/** A zigzag varint (Avro int and long), of a safe integer: BigInt, since JS bit operations are 32-bit. */
function writeLong(out, value, name) {
  if (!Number.isSafeInteger(value)) refuse(`${name} must be an integer, got ${value}`);
  const n = BigInt(value);
  let zigzag = n >= 0n ? n << 1n : (-n << 1n) - 1n;
  while (zigzag >= 0x80n) {
    out.push(Number((zigzag & 0x7fn) | 0x80n));
    zigzag >>= 7n;
  }
  out.push(Number(zigzag));
}

const utf8 = new TextEncoder();

function writeString(out, text, name) {
  if (typeof text !== 'string') refuse(`${name} must be a string, got ${text === null ? 'null' : typeof text}`);
  // a lone surrogate has no UTF-8 form: TextEncoder would sign U+FFFD in its place
  if (!text.isWellFormed()) refuse(`${name} is not well-formed Unicode text`);
  const raw = utf8.encode(text);
  writeLong(out, raw.length, name);
  for (const byte of raw) out.push(byte);
}

function writeField(out, type, value, name) {
  switch (type) {
    case 'string':
      return writeString(out, value, name);
    case 'uuid':
      if (typeof value !== 'string' || !UUID.test(value)) refuse(`${name} must be a lowercase hyphenated UUID, got ${value}`);
      return writeString(out, value, name);
    case 'timestamp-millis':
      return writeLong(out, value, `${name} (integer milliseconds)`);
    case 'optional string': // ["null", "string"]: branch 0 is null, branch 1 the string
      if (value === null) return writeLong(out, 0, name);
      writeLong(out, 1, name);
      return writeString(out, value, name);
    case 'status': {
      const index = STATUSES.indexOf(value);
      if (index < 0) refuse(`${name}: ${value} is not a symbol of fr.cepbus.ReferralStatus`);
      return writeLong(out, index, name);
    }
    case 'null':
      if (value !== null) refuse(`${name} must be empty: the signature travels beside the event, not in it`);
      return writeLong(out, 0, name);
    default:
      return refuse(`${name}: no encoder for ${type}`);
  }
}

function fromHex(hex) {
  if (!/^([0-9a-f]{2})*$/.test(hex)) refuse(`not lowercase hex: ${hex}`);
  return Uint8Array.from(hex.match(/../g) || [], (pair) => parseInt(pair, 16));
}

/** S, the update's Avro single-object bytes (a Uint8Array), under the writer schema `fingerprint`
 *  (hex) the server names: refused unless it is the one this encoder writes. */
export function statementBytes(update, fingerprint) {
  if (fingerprint !== WRITER_FINGERPRINT) {
    refuse(`the server asks for schema ${fingerprint}; this page encodes ${EVENT_TYPE} ${WRITER_FINGERPRINT} only`);
  }
  const fields = signedFields(update);
  if (update.envelope.event_type !== EVENT_TYPE) refuse(`event_type must be ${EVENT_TYPE}, got ${update.envelope.event_type}`);
  const out = [...MARKER, ...fromHex(fingerprint)];
  const types = [...ENVELOPE_FIELDS, ...UPDATE_FIELDS];
  fields.forEach(([name, value], i) => writeField(out, types[i][1], value, name));
  return Uint8Array.from(out);
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

/** d = SHA-256("cep-bus/statement/v1" || 00 || S). */
export function statementDigest(statement) {
  return sha256(concat(utf8.encode(STATEMENT_TAG), statement));
}

/** What the key signs for a batch of one statement (n = 1; the root is the leaf SHA-256(00 || d)). */
export async function batchOfOne(digest) {
  const size = new Uint8Array(8);
  new DataView(size.buffer).setBigUint64(0, 1n, false);
  const leaf = await sha256(concat(Uint8Array.of(0), digest));
  return concat(utf8.encode(BATCH_TAG), size, leaf);
}

/** {statement, digest, message} of an update: the bytes, their digest, what the key signs. */
export async function toSign(update, fingerprint) {
  const statement = statementBytes(update, fingerprint);
  const digest = await statementDigest(statement);
  return {statement, digest, message: await batchOfOne(digest)};
}

export function toHex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');
}

export function toBase64(bytes) {
  let binary = '';
  for (const b of new Uint8Array(bytes)) binary += String.fromCharCode(b);
  return btoa(binary);
}

export function fromBase64(text) {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/').replace(/\s+/g, ''));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}
