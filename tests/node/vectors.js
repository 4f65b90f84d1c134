// Checks schemas/vectors/ with a second implementation: avsc and node:crypto, through lib/contract.js
// (written from schemas/avro and the docs, never from Python). For every vector: the fingerprint and the
// Confluent id recomputed, both frames decoded to `value`, `value` encoded back byte for byte, and its
// statement signature rebuilt from the single-object bytes (digest, root, signed message, signature from
// the test seed, key id, header) and verified; for every batch of statement-batches.json the tree, each
// member's path and header, the signature. Then the forgeries: every one-bit flip of each statement's
// bytes and signature, and of each batch member's bytes and path, must be refused (played after every
// exact check, so a wrong vector fails fast). Prints a JSON summary; exit 1 on a mismatch.
//   usage: node vectors.js SCHEMAS_DIR VECTORS_DIR
'use strict';

const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const contract = require('./lib/contract');

const BATCHES_FILE = 'statement-batches.json';

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

/** Every one-bit change of `data` (a Buffer), one at a time. */
function* flips(data) {
  for (let bit = 0; bit < data.length * 8; bit++) {
    const forged = Buffer.from(data);
    forged[bit >> 3] ^= 1 << (bit & 7);
    yield forged;
  }
}

/** What a consumer checks of a statement, from its bytes: digest, leaf, root by the path, signature. */
function verifies(publicKey, signature, singleObject, index, size, path) {
  const root = contract.rootFromPath(contract.leafHash(contract.statementDigest(singleObject)), index, size, path);
  return root !== null && crypto.verify(null, contract.signedMessage(size, root), publicKey, signature);
}

/** The signer a section names, checked: the seed's public key and the key id derived from it. */
function signerOf(section, at) {
  const signer = contract.statementSigner(section.signer_org_id, section.test_seed_hex);
  const raw = contract.rawPublicKey(signer.privateKey);
  assert.strictEqual(raw.toString('base64'), section.public_key_b64, at('the public key is the seed\'s'));
  assert.strictEqual(signer.keyId, section.key_id, at('key id'));
  assert.strictEqual(contract.keyId(section.signer_org_id, raw), section.key_id, at('key id from the raw key'));
  return {signer, publicKey: contract.ed25519PublicKey(section.public_key_b64)};
}

/** A vector's statement, alone (a batch of one); returns its forgery job. */
function checkStatement(vector) {
  const st = vector.statement;
  const at = (what) => `${vector.name}: statement ${what}`;
  assert.strictEqual(st.signer_org_id, vector.value.envelope.producer_org_id, at('signer is the producer'));
  const single = Buffer.from(vector.single_object_hex, 'hex');
  const digest = contract.statementDigest(single);
  assert.strictEqual(digest.toString('hex'), st.digest_hex, at('digest'));
  const root = contract.leafHash(digest);  // n = 1: the root is the leaf
  assert.strictEqual(root.toString('hex'), st.root_hex, at('root'));
  const message = contract.signedMessage(1, root);
  assert.strictEqual(message.toString('hex'), st.signed_message_hex, at('signed message'));
  const {signer, publicKey} = signerOf(st, at);
  const [signed] = contract.signStatements(signer, [single]);
  assert.strictEqual(signed.signature.toString('hex'), st.signature_hex, at('signature from the seed'));
  assert.strictEqual(signed.header, st.header, at('header'));
  const keys = new Map([[st.key_id, {orgId: st.signer_org_id, publicKey}]]);
  const found = contract.verifyStatement(single, Buffer.from(st.header), keys);
  assert.ok(found.root.equals(root) && found.orgId === st.signer_org_id, at('verifies'));
  const signature = Buffer.from(st.signature_hex, 'hex');
  return () => {
    let refused = 0;
    for (const forged of flips(single)) if (!verifies(publicKey, signature, forged, 0, 1, [])) refused++;
    for (const forged of flips(signature)) if (!verifies(publicKey, forged, single, 0, 1, [])) refused++;
    assert.strictEqual(refused, 8 * (single.length + signature.length), at('every one-bit forgery is refused'));
    return refused;
  };
}

/** A batch of several statements of one producer; returns its forgery job. */
function checkBatch(batch, byName) {
  const at = (what) => `${batch.name}: ${what}`;
  assert.ok(batch.size > 1 && batch.members.length === batch.size, at('a batch of several'));
  const statements = batch.members.map((m, i) => {
    assert.strictEqual(m.index, i, at(`member ${i} index`));
    assert.ok(byName.has(m.vector), at(`member ${i} names a vector`));
    assert.strictEqual(m.single_object_hex, byName.get(m.vector).single_object_hex, at(`member ${i} bytes`));
    return Buffer.from(m.single_object_hex, 'hex');
  });
  const leaves = statements.map((single, i) => {
    const digest = contract.statementDigest(single);
    assert.strictEqual(digest.toString('hex'), batch.members[i].digest_hex, at(`member ${i} digest`));
    const leaf = contract.leafHash(digest);
    assert.strictEqual(leaf.toString('hex'), batch.members[i].leaf_hash_hex, at(`member ${i} leaf`));
    return leaf;
  });
  const {root, paths} = contract.batchTree(leaves);
  assert.strictEqual(root.toString('hex'), batch.root_hex, at('root'));
  const message = contract.signedMessage(batch.size, root);
  assert.strictEqual(message.toString('hex'), batch.signed_message_hex, at('signed message'));
  const {signer, publicKey} = signerOf(batch, at);
  const signed = contract.signStatements(signer, statements);
  const signature = Buffer.from(batch.signature_hex, 'hex');
  assert.ok(signed[0].signature.equals(signature), at('signature from the seed'));
  const keys = new Map([[batch.key_id, {orgId: batch.signer_org_id, publicKey}]]);
  const members = batch.members.map((m, i) => {
    const path = m.path_hex.map((h) => Buffer.from(h, 'hex'));
    assert.deepStrictEqual(paths[i].map((h) => h.toString('hex')), m.path_hex, at(`member ${i} path`));
    const walked = contract.rootFromPath(leaves[i], i, batch.size, path);
    assert.ok(walked && walked.equals(root), at(`member ${i} path leads to the root`));
    assert.strictEqual(signed[i].header, m.header, at(`member ${i} header`));
    const found = contract.verifyStatement(statements[i], Buffer.from(m.header), keys);
    assert.ok(found.root.equals(root), at(`member ${i} verifies`));
    return {single: statements[i], index: i, path};
  });
  return () => {
    let refused = 0;
    let tried = 0;
    for (const {single, index, path} of members) {
      for (const forged of flips(single)) {
        tried++;
        if (!verifies(publicKey, signature, forged, index, batch.size, path)) refused++;
      }
      path.forEach((node, k) => {
        for (const forged of flips(node)) {
          tried++;
          const moved = path.map((h, j) => (j === k ? forged : h));
          if (!verifies(publicKey, signature, single, index, batch.size, moved)) refused++;
        }
      });
    }
    const first = members[0];
    for (const forged of flips(signature)) {
      tried++;
      if (!verifies(publicKey, forged, first.single, 0, batch.size, first.path)) refused++;
    }
    assert.strictEqual(refused, tried, at('every one-bit forgery is refused'));
    return refused;
  };
}

function main() {
  const [schemasDir, vectorsDir] = process.argv.slice(2);
  if (!schemasDir || !vectorsDir) throw new Error('usage: node vectors.js SCHEMAS_DIR VECTORS_DIR');
  const bus = contract.loadContract(schemasDir);
  const summary = {vectors: 0, types: 0, statements: 0, batches: 0, batch_members: 0, forgeries_refused: 0, names: []};
  const forgeries = [];
  const byName = new Map();
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
        const buf = Buffer.from(hex, 'hex');
        let decoded;
        try {
          decoded = contract.decode(bus, buf);
        } catch (err) {
          throw new Error(`${where}: ${framing} does not decode: ${err.message}`);
        }
        assert.strictEqual(decoded.type.name, vector.type, `${where}: ${framing} writer schema`);
        assert.strictEqual(decoded.framing, framing, `${where}: framing`);
        assert.deepStrictEqual(toPlain(type, decoded.value), vector.value, `${where}: ${framing} decodes to value`);
        assert.strictEqual(contract.statementOf(bus, buf).toString('hex'), vector.single_object_hex,
          `${where}: ${framing} frame's statement`);
      }
      const datum = fromPlain(type, vector.value);
      assert.strictEqual(contract.encodeSingleObject(type, datum).toString('hex'), vector.single_object_hex,
        `${where}: single-object encoding`);
      assert.strictEqual(contract.encodeConfluent(type, datum).toString('hex'), vector.confluent_hex,
        `${where}: Confluent encoding`);
      assert.ok(vector.statement, `${where}: a statement signature`);
      forgeries.push(checkStatement(vector));
      summary.statements++;
      byName.set(vector.name, vector);
      summary.vectors++;
      summary.names.push(vector.name);
    }
  }
  for (const batch of JSON.parse(fs.readFileSync(path.join(vectorsDir, BATCHES_FILE), 'utf8'))) {
    forgeries.push(checkBatch(batch, byName));
    summary.batches++;
    summary.batch_members += batch.members.length;
  }
  for (const play of forgeries) summary.forgeries_refused += play();
  process.stdout.write(JSON.stringify(summary) + '\n');
}

try {
  main();
} catch (err) {
  process.stderr.write(`vectors: ${err.message}\n`);
  process.exit(1);
}
