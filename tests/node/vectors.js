// Checks schemas/vectors/ with a second implementation: avsc and node:crypto, through lib/contract.js
// (written from schemas/avro and the docs, never from Python). For every vector: the fingerprint and the
// Confluent id recomputed, both frames decoded to `value`, `value` encoded back byte for byte; for signed
// status updates the canonical bytes rebuilt from `value`, the signature reproduced from the test seed
// and verified with the public key, and a flipped bit refused. Prints a JSON summary; exit 1 on a mismatch.
//   usage: node vectors.js SCHEMAS_DIR VECTORS_DIR
'use strict';

const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const contract = require('./lib/contract');

const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

// `value` is plain JSON (schemas/vectors/README.md): unions unwrapped, bytes as hex, the rest as is.
function branchOf(union, value) {
  return union.types.find((t) => t.typeName !== 'null');
}
function toPlain(type, value) {
  switch (type.typeName) {
    case 'record': {
      const out = {};
      for (const field of type.fields) out[field.name] = toPlain(field.type, value[field.name]);
      return out;
    }
    case 'union:unwrapped': return value === null ? null : toPlain(branchOf(type, value), value);
    case 'bytes': return value.toString('hex');
    case 'array': return value.map((item) => toPlain(type.itemsType, item));
    case 'map': return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toPlain(type.valuesType, v)]));
    default: return value;
  }
}
function fromPlain(type, value) {
  switch (type.typeName) {
    case 'record': {
      const out = {};
      for (const field of type.fields) out[field.name] = fromPlain(field.type, value[field.name]);
      return out;
    }
    case 'union:unwrapped': return value === null ? null : fromPlain(branchOf(type, value), value);
    case 'bytes': return Buffer.from(value, 'hex');
    case 'array': return value.map((item) => fromPlain(type.itemsType, item));
    case 'map': return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromPlain(type.valuesType, v)]));
    default: return value;
  }
}

function checkSignature(vector) {
  const sig = vector.signature;
  const at = (what) => `${vector.name}: ${what}`;
  const update = fromPlain(vector.avscType, vector.value);
  const canonical = contract.canonicalStatusBytes(update);
  assert.strictEqual(canonical.toString('hex'), sig.canonical_bytes_hex, at('canonical bytes'));
  const resigned = contract.signStatus(update, sig.signer_org_id, sig.test_seed_hex);
  assert.strictEqual(resigned.signature.toString('hex'), sig.signature_hex, at('signature from the seed'));
  assert.strictEqual(vector.value.signature, sig.signature_hex, at('the value carries the signature'));
  const publicKey = crypto.createPublicKey({
    key: Buffer.concat([SPKI_ED25519_PREFIX, Buffer.from(sig.public_key_b64, 'base64')]), format: 'der', type: 'spki',
  });
  const signature = Buffer.from(sig.signature_hex, 'hex');
  assert.ok(crypto.verify(null, canonical, publicKey, signature), at('verifies with the public key'));
  const derived = crypto.createPublicKey(contract.ed25519PrivateKey(sig.test_seed_hex))
    .export({format: 'der', type: 'spki'}).subarray(SPKI_ED25519_PREFIX.length);
  assert.strictEqual(derived.toString('base64'), sig.public_key_b64, at('the public key is the seed\'s'));
  let refused = 0;
  for (let i = 0; i < canonical.length; i++) {  // the attack: one bit changed anywhere
    const forged = Buffer.from(canonical);
    forged[i] ^= 0x01;
    if (!crypto.verify(null, forged, publicKey, signature)) refused++;
  }
  assert.strictEqual(refused, canonical.length, at('every one-bit change is refused'));
  return refused;
}

function main() {
  const [schemasDir, vectorsDir] = process.argv.slice(2);
  if (!schemasDir || !vectorsDir) throw new Error('usage: node vectors.js SCHEMAS_DIR VECTORS_DIR');
  const bus = contract.loadContract(schemasDir);
  const summary = {vectors: 0, types: 0, signatures: 0, forgeries_refused: 0, names: []};
  const files = fs.readdirSync(vectorsDir).filter((f) => /^fr\.cepbus\..*\.json$/.test(f)).sort();
  for (const file of files) {
    summary.types++;
    for (const vector of JSON.parse(fs.readFileSync(path.join(vectorsDir, file), 'utf8'))) {
      const where = `${file} ${vector.name}`;
      const type = bus.records[vector.type];
      assert.ok(type, `${where}: ${vector.type} is no record of the contract`);
      assert.strictEqual(contract.fingerprint(type).toString('hex'), vector.fingerprint_hex, `${where}: fingerprint`);
      assert.strictEqual(contract.confluentId(type), vector.confluent_schema_id, `${where}: Confluent id`);
      for (const [framing, hex] of [['single-object', vector.single_object_hex], ['confluent', vector.confluent_hex]]) {
        const decoded = contract.decode(bus, Buffer.from(hex, 'hex'));
        assert.strictEqual(decoded.type.name, vector.type, `${where}: ${framing} writer schema`);
        assert.strictEqual(decoded.framing, framing, `${where}: framing`);
        assert.deepStrictEqual(toPlain(type, decoded.value), vector.value, `${where}: ${framing} decodes to value`);
      }
      const datum = fromPlain(type, vector.value);
      assert.strictEqual(contract.encodeSingleObject(type, datum).toString('hex'), vector.single_object_hex,
        `${where}: single-object encoding`);
      assert.strictEqual(contract.encodeConfluent(type, datum).toString('hex'), vector.confluent_hex,
        `${where}: Confluent encoding`);
      if (vector.signature) {
        summary.forgeries_refused += checkSignature(Object.assign({avscType: type}, vector));
        summary.signatures++;
      }
      summary.vectors++;
      summary.names.push(vector.name);
    }
  }
  process.stdout.write(JSON.stringify(summary) + '\n');
}

try {
  main();
} catch (err) {
  process.stderr.write(`vectors: ${err.message}\n`);
  process.exit(1);
}
