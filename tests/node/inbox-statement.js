// The partner inbox's browser encoder (services/inbox/static/statement.js) under Node.js: for every case
// Python wrote (tests/unit/inbox/statement_cases.py), the statement it rebuilds from the page's fields is
// fastavro's byte for byte, and so are its digest and the batch-of-one message; a one-bit change of any
// field changes the digest (or is refused: the event type, the in-body signature); fields it does not
// encode, another writer schema, malformed values are refused. It then signs each message with the
// WebCrypto Ed25519 key given (non-extractable, as in the browser) and prints the signatures, which the
// Python side verifies with the directory. Uses no npm package: the module is the browser's, loaded
// as is (through a data: URL, always an ES module), and WebCrypto is Node's globalThis.crypto.
// Prints a JSON summary; exit 1 with the failure on stderr.
//   usage: node inbox-statement.js CASES.json [MODULE]
'use strict';

const assert = require('assert');
const fs = require('fs');
const path = require('path');

const MODULE = path.resolve(__dirname, '../../services/inbox/static/statement.js');

async function load(file) {
  const source = fs.readFileSync(file);
  return import(`data:text/javascript;base64,${source.toString('base64')}`);
}

function clone(value) {
  return JSON.parse(JSON.stringify(value));
}

// One bit of a field's value flipped, keeping it a value of the field's type (null <-> present).
function flipped(m, name, value) {
  if (value === null) return '';
  if (value === '') return null;
  if (typeof value === 'number') return value % 2 === 0 ? value + 1 : value - 1; // bit 0, two's complement
  if (name === 'status') return m.STATUSES[m.STATUSES.indexOf(value) ^ 1];
  if (name === 'event_id') {
    const nibble = (parseInt(value[0], 16) ^ 1).toString(16);
    return nibble + value.slice(1);
  }
  const first = value.charCodeAt(0); // a high surrogate stays one: the text stays well-formed
  return String.fromCharCode(first ^ 1) + value.slice(1);
}

function withField(fields, name, value) {
  const out = clone(fields);
  if (name in out.envelope) out.envelope[name] = value;
  else out[name] = value;
  return out;
}

function refusal(m, fields, fingerprint) {
  try {
    m.statementBytes(fields, fingerprint);
    return null;
  } catch (error) {
    return error.message;
  }
}

async function checkCase(m, c, summary) {
  const at = (what) => `${c.name}: ${what}`;
  const {statement, digest, message} = await m.toSign(c.fields, c.fingerprint);
  assert.strictEqual(m.toHex(statement), c.statement_hex, at('statement bytes differ from fastavro'));
  assert.strictEqual(m.toHex(digest), c.digest_hex, at('statement digest'));
  assert.strictEqual(m.toHex(message), c.message_hex, at('signed message'));
  for (const [name, value] of m.signedFields(c.fields)) {
    const changed = withField(c.fields, name, flipped(m, name, value));
    if (name === 'event_type' || name === 'signature') {
      assert.ok(refusal(m, changed, c.fingerprint), at(`a changed ${name} must be refused`));
      summary.refused_changes += 1;
      continue;
    }
    const other = await m.toSign(changed, c.fingerprint);
    assert.notStrictEqual(m.toHex(other.digest), c.digest_hex, at(`one bit of ${name} changed, same digest`));
    summary.changes += 1;
  }
}

function checkRefusals(m, c) {
  const f = c.fields;
  const extraEnvelope = clone(f);
  extraEnvelope.envelope.recorded_at = 1;
  const cases = {
    'another writer schema': [f, '0000000000000000'],
    'an unknown field': [{...clone(f), comment: 'x'}, c.fingerprint],
    'an unknown envelope field': [extraEnvelope, c.fingerprint],
    'an in-body signature': [withField(f, 'signature', 'abcd'), c.fingerprint],
    'an uppercase event id': [withField(f, 'event_id', f.envelope.event_id.toUpperCase()), c.fingerprint],
    'fractional milliseconds': [withField(f, 'occurred_at', 1.5), c.fingerprint],
    'a time beyond 2^53': [withField(f, 'occurred_at', 2 ** 53), c.fingerprint],
    'an unknown status': [withField(f, 'status', 'approved'), c.fingerprint],
    'a lone surrogate': [withField(f, 'note', 'ab\ud800c'), c.fingerprint],
    'a missing referral id': [withField(f, 'referral_id', null), c.fingerprint],
  };
  for (const [what, [fields, fingerprint]] of Object.entries(cases)) {
    assert.ok(refusal(m, fields, fingerprint), `${what} must be refused`);
  }
  return Object.keys(cases).length;
}

async function signAll(m, documents, pkcs8Base64) {
  const der = Buffer.from(pkcs8Base64, 'base64');
  const key = await crypto.subtle.importKey('pkcs8', der, {name: 'Ed25519'}, false, ['sign']);
  const signatures = {};
  for (const c of documents) {
    const {message} = await m.toSign(c.fields, c.fingerprint);
    signatures[c.name] = m.toBase64(await crypto.subtle.sign('Ed25519', key, message));
  }
  return signatures;
}

async function main() {
  const [casesPath, modulePath] = process.argv.slice(2);
  const input = JSON.parse(fs.readFileSync(casesPath, 'utf8'));
  const m = await load(modulePath || MODULE);
  const summary = {cases: 0, changes: 0, refused_changes: 0, refusals: 0, signatures: {}};
  for (const c of input.cases) {
    await checkCase(m, c, summary);
    summary.cases += 1;
  }
  summary.refusals = checkRefusals(m, input.cases[0]);
  summary.signatures = await signAll(m, input.cases, input.pkcs8_base64);
  process.stdout.write(JSON.stringify(summary));
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
