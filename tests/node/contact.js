// Checks schemas/vectors/sealed-contacts.json with a second implementation of HPKE (RFC 9180):
// @hpke/core (the library the inbox uses in the browser) and node:crypto, never Python. For every
// `sealed` box: HPKE `info` rebuilt from info_tag_hex and the canonical JSON of the binding (sorted keys,
// no spaces, UTF-8), the ciphertext's SHA-256, the box opened with the recipient's test private key
// (enc = its first 32 bytes, AAD empty) to exactly plaintext_hex, which parses to `contact`. Every
// `must_not_open` box must fail to open under the info of its own binding. Then the other way round: a
// fresh box sealed here to the recipient's public key for the first binding, printed for Python to open.
// Prints one JSON line {"opened", "refused", "node_box_hex", "info_hex"}; exit 1 on a mismatch.
//   usage: node contact.js SEALED_CONTACTS_JSON
'use strict';

const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const {Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256} = require('@hpke/core');
const {canonicalJson} = require('./lib/contract');

const SUITE = {mode: 'base', kem_id: 0x20, kdf_id: 0x01, aead_id: 0x01};
const ENC_BYTES = 32;  // DHKEM(X25519): the encapsulated key is the first 32 bytes of a box
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

function hex(data) {
  return Buffer.from(data instanceof ArrayBuffer ? new Uint8Array(data) : data).toString('hex');
}

/** A fresh ArrayBuffer holding exactly `bytes` (a Buffer may be a view into a larger pool). */
function arrayBuffer(bytes) {
  return new Uint8Array(bytes).buffer;
}

function fromHex(value, where) {
  if (typeof value !== 'string' || !/^([0-9a-f]{2})*$/.test(value)) throw new Error(`${where}: not lowercase hex`);
  return Buffer.from(value, 'hex');
}

/** HPKE `info`: the tag, then the canonical JSON of what the box is bound to. */
function infoOf(tag, binding, where) {
  if (binding === null || typeof binding !== 'object' || Array.isArray(binding)) {
    throw new Error(`${where}: binding is not an object`);
  }
  return Buffer.concat([tag, Buffer.from(canonicalJson(binding, `${where}.binding`), 'utf8')]);
}

/** The box split as the format says: enc (32 bytes) || AEAD ciphertext with its tag. */
function split(box, where) {
  if (box.length <= ENC_BYTES) throw new Error(`${where}: a box of ${box.length} bytes has no ciphertext`);
  return {enc: arrayBuffer(box.subarray(0, ENC_BYTES)), ct: arrayBuffer(box.subarray(ENC_BYTES))};
}

/** The recipient's public key, from its private key with node:crypto (not from @hpke/core). */
function publicKeyOf(privateRaw) {
  const key = crypto.createPrivateKey({
    key: Buffer.concat([X25519_PKCS8_PREFIX, privateRaw]), format: 'der', type: 'pkcs8',
  });
  return Buffer.from(crypto.createPublicKey(key).export({format: 'jwk'}).x, 'base64url');
}

async function main() {
  const file = process.argv[2];
  if (!file) throw new Error('usage: node contact.js SEALED_CONTACTS_JSON');
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  for (const [field, value] of Object.entries(SUITE)) {
    assert.strictEqual(doc.suite[field], value, `suite.${field} is ${doc.suite[field]}, expected ${value}`);
  }
  assert.strictEqual(doc.suite.aead, 'AES-128-GCM', 'suite.aead');
  const tag = fromHex(doc.info_tag_hex, 'info_tag_hex');
  const recipient = doc.recipient;
  const privateRaw = fromHex(recipient.test_private_key_hex, 'recipient.test_private_key_hex');
  assert.strictEqual(privateRaw.length, 32, 'recipient: a raw X25519 private key is 32 bytes');
  const publicRaw = Buffer.from(recipient.public_key_b64, 'base64');
  assert.strictEqual(publicKeyOf(privateRaw).toString('base64'), recipient.public_key_b64,
    'recipient: public_key_b64 is not the public key of test_private_key_hex');

  const suite = new CipherSuite({
    kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm(),
  });
  const recipientKey = await suite.kem.importKey('raw', arrayBuffer(privateRaw), false);
  const recipientPublicKey = await suite.kem.importKey('raw', arrayBuffer(publicRaw), true);

  const summary = {opened: 0, refused: 0};
  if (!Array.isArray(doc.sealed) || !doc.sealed.length) throw new Error('no sealed vectors');
  for (const vector of doc.sealed) {
    const where = `sealed ${JSON.stringify(vector.name)}`;
    const info = infoOf(tag, vector.binding, where);
    assert.strictEqual(info.toString('hex'), vector.info_hex, `${where}: info rebuilt from the binding differs`);
    const box = fromHex(vector.ciphertext_hex, `${where}.ciphertext_hex`);
    assert.strictEqual(crypto.createHash('sha256').update(box).digest('hex'), vector.ciphertext_sha256_hex,
      `${where}: ciphertext_sha256_hex is not the SHA-256 of the ciphertext`);
    const {enc, ct} = split(box, where);
    let plaintext;
    try {
      plaintext = Buffer.from(await suite.open({recipientKey, enc, info: arrayBuffer(info)}, ct));
    } catch (err) {
      throw new Error(`${where}: does not open (${err.name}: ${err.message})`);
    }
    assert.strictEqual(plaintext.toString('hex'), vector.plaintext_hex, `${where}: opened to other bytes`);
    let contact;
    try {
      contact = JSON.parse(new TextDecoder('utf-8', {fatal: true}).decode(plaintext));
    } catch (err) {
      throw new Error(`${where}: the plaintext is not UTF-8 JSON (${err.message})`);
    }
    assert.deepStrictEqual(contact, vector.contact, `${where}: the plaintext is not \`contact\``);
    assert.strictEqual(canonicalJson(contact, `${where}.contact`), plaintext.toString('utf8'),
      `${where}: the plaintext is not the canonical JSON of the contact`);
    summary.opened++;
  }

  for (const vector of doc.must_not_open || []) {
    const where = `must_not_open ${JSON.stringify(vector.name)}`;
    const info = infoOf(tag, vector.binding, where);
    const {enc, ct} = split(fromHex(vector.ciphertext_hex, `${where}.ciphertext_hex`), where);
    let opened = false;
    try {
      await suite.open({recipientKey, enc, info: arrayBuffer(info)}, ct);
      opened = true;
    } catch (err) {
      // refused, as it must be
    }
    if (opened) throw new Error(`${where}: opened, but must not`);
    summary.refused++;
  }

  // The other way: a box sealed here, for the first binding, that Python must open.
  const first = doc.sealed[0];
  const info = infoOf(tag, first.binding, 'node box');
  const sealed = await suite.seal(
    {recipientPublicKey, info: arrayBuffer(info)}, arrayBuffer(fromHex(first.plaintext_hex, 'plaintext_hex')));
  const nodeBox = Buffer.concat([Buffer.from(sealed.enc), Buffer.from(sealed.ct)]);
  const back = Buffer.from(await suite.open(
    {recipientKey, enc: arrayBuffer(nodeBox.subarray(0, ENC_BYTES)), info: arrayBuffer(info)},
    arrayBuffer(nodeBox.subarray(ENC_BYTES))));
  assert.strictEqual(back.toString('hex'), first.plaintext_hex, 'node box: does not open to its plaintext');
  summary.node_box_hex = hex(nodeBox);
  summary.info_hex = hex(info);
  process.stdout.write(JSON.stringify(summary) + '\n');
}

main().catch((err) => {
  process.stderr.write(`contact: ${String(err.message).replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(1);
});
