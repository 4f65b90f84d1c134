// The person's contact on a referral, sealed to its recipient (issue #24), from a non-Python client's
// point of view: derived from `schemas/avro/fr.cepbus.ReferralContact.avsc` and `SealedContact.avsc`,
// schemas/vectors/README.md ("Sealed contacts") and docs/referrals.md, never from the Python code.
//
//   loadDirectory(file, authority)   one read of a directory file, used only if the pinned authority
//                                    signed it: {keys (as contract.loadDirectoryKeys), partners,
//                                    encryptionKeys, serial}
//   directoryPartners(document)      Map org id -> {orgId, kind, name, regionCode} of `signed.partners`
//                                    (the local partners: Transitions Pro, SPRO, OPCO...; not the CEP
//                                    operators, which the reference data lists)
//   encryptionKeys(document)         Map org id -> its `signed.encryption_keys`, oldest first
//   encryptionKeyId(org, raw), newestEncryptionKey(keys, org, at)
//   readContact(type, file)          a ReferralContact JSON file, checked: every field, null where absent
//   contactPlaintext(type, contact)  what is sealed: its canonical JSON, UTF-8
//   contactInfo(binding)             HPKE `info`
//   sealContact(plaintext, key, {referral_id, requester_org_id, recipient_org_id})
//                                    a fr.cepbus.SealedContact value {recipient_key_id, ciphertext,
//                                    ciphertext_sha256}
//   openContact(box, privateRaw, info)  the plaintext back (a recipient's side; for checks)
//
// HPKE (RFC 9180) base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, empty AAD, with
// @hpke/core; the box is `enc` (32 bytes) followed by the AEAD ciphertext. `info` is
// `cep-bus/contact/v1` 0x00 then the canonical JSON (sorted keys, no spaces, UTF-8) of
// {key_id, recipient_org_id, referral_id, requester_org_id}: a box moved to another referral, requester,
// recipient or key does not open.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const {Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256} = require('@hpke/core');
const contract = require('./contract');

const CONTACT_INFO_TAG = Buffer.from('cep-bus/contact/v1\x00', 'latin1');
const ENCRYPTION_KEY_TAG = Buffer.from('cep-bus/partner-encryption-key/v1\n', 'latin1');
const ENC_BYTES = 32;  // DHKEM(X25519): the encapsulated key opens a box
const SEALED_CONTACT_MAX_BYTES = 8192;  // fr.cepbus.SealedContact.ciphertext: at most 8192 bytes
const KEY_ID = /^[0-9a-f]{16}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const suite = new CipherSuite({kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm()});

/** A fresh ArrayBuffer holding exactly `bytes` (a Buffer may be a view into a larger pool). */
function arrayBuffer(bytes) {
  return new Uint8Array(bytes).buffer;
}

// -- the directory ----------------------------------------------------------------------------------

/** An instant of the directory (ISO-8601 with its zone) in ms since the epoch; null stays null. */
function directoryTime(text, what) {
  if (text === null || text === undefined) return null;
  if (typeof text !== 'string' || !/^\d{4}-\d{2}-\d{2}T[0-9:.]+(Z|[+-]\d{2}:\d{2})$/.test(text) ||
      Number.isNaN(Date.parse(text))) {
    throw new Error(`${what}: ${JSON.stringify(text)} is not an ISO-8601 time with its zone`);
  }
  return Date.parse(text);
}

/** An encryption key id: 16 hex characters of SHA-256("cep-bus/partner-encryption-key/v1\n" || org id
 * || "\n" || raw X25519 public key): its own tag, so a signing and an encryption key never share an id. */
function encryptionKeyId(orgId, rawPublic) {
  return crypto.createHash('sha256')
    .update(Buffer.concat([ENCRYPTION_KEY_TAG, Buffer.from(orgId, 'utf8'), Buffer.from('\n'), rawPublic]))
    .digest('hex').slice(0, 16);
}

/** The local partners of a directory document (`signed.partners`): Map org id -> {orgId, kind, name,
 * regionCode}. */
function directoryPartners(document) {
  const partners = new Map();
  const list = document.signed.partners;
  if (!Array.isArray(list)) throw new Error('signed.partners is not a list');
  list.forEach((entry, i) => {
    if (!entry || typeof entry !== 'object' || typeof entry.org_id !== 'string' ||
        typeof entry.kind !== 'string') {
      throw new Error(`partners[${i}]: not an {org_id, kind, ...} entry`);
    }
    partners.set(entry.org_id, {
      orgId: entry.org_id, kind: entry.kind, name: entry.name ?? null, regionCode: entry.region_code ?? null,
    });
  });
  return partners;
}

/**
 * The encryption keys of a directory document (`signed.encryption_keys`; absent from directories written
 * before issue #24: none): Map org id -> [{orgId, keyId, publicRaw, notBefore, notAfter, revokedAt}],
 * oldest `not_before` first (then by key id). Each entry checked as the bus checks it at load: a 32-byte
 * X25519 public key whose key id is derived from its organisation and raw bytes, a window that is not
 * empty, an id listed once. Throws an Error naming the offending entry otherwise.
 */
function encryptionKeys(document) {
  const list = document.signed.encryption_keys ?? [];
  if (!Array.isArray(list)) throw new Error('signed.encryption_keys is not a list');
  const byOrg = new Map();
  const ids = new Set();
  list.forEach((entry, i) => {
    const at = `encryption_keys[${i}]`;
    if (!entry || typeof entry !== 'object') throw new Error(`${at}: not an object`);
    const {org_id: orgId, key_id: keyId, public_key: publicText} = entry;
    if (typeof orgId !== 'string' || !orgId) throw new Error(`${at}: no org_id`);
    if (typeof keyId !== 'string' || !KEY_ID.test(keyId)) throw new Error(`${at}: key_id is not a key id`);
    if (typeof publicText !== 'string' || !BASE64.test(publicText)) {
      throw new Error(`${at}: public_key is not base64`);
    }
    const publicRaw = Buffer.from(publicText, 'base64');
    if (publicRaw.length !== 32) {
      throw new Error(`${at} (${orgId}): an X25519 public key is 32 bytes, got ${publicRaw.length}`);
    }
    const expected = encryptionKeyId(orgId, publicRaw);
    if (expected !== keyId) {
      throw new Error(`${at}: key id ${keyId} of ${orgId} does not match its public key (${expected})`);
    }
    const notBefore = directoryTime(entry.not_before, `${at}.not_before`);
    if (notBefore === null) throw new Error(`${at}: no not_before`);
    const notAfter = directoryTime(entry.not_after, `${at}.not_after`);
    const revokedAt = directoryTime(entry.revoked_at, `${at}.revoked_at`);
    if (notAfter !== null && notAfter <= notBefore) throw new Error(`${at}: not_after is not after not_before`);
    if (ids.has(keyId)) throw new Error(`${at}: encryption key id ${keyId} listed twice`);
    ids.add(keyId);
    if (!byOrg.has(orgId)) byOrg.set(orgId, []);
    byOrg.get(orgId).push({orgId, keyId, publicRaw, notBefore, notAfter, revokedAt});
  });
  for (const keys of byOrg.values()) {
    keys.sort((a, b) => a.notBefore - b.notBefore || (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : 0));
  }
  return byOrg;
}

/** The organisation's newest encryption key valid at `at` (ms; default now): not_before <= at, at <
 * not_after (if set), at < revoked_at (if set); the one a new contact is sealed to. null when none. */
function newestEncryptionKey(keys, orgId, at = Date.now()) {
  const valid = (keys.get(orgId) || []).filter((key) => contract.keyValidAt(key, at));
  return valid.length ? valid[valid.length - 1] : null;
}

/**
 * A directory file, read once and used only if the pinned authority signed it (as
 * contract.loadDirectoryKeys, with the same messages): {keys, partners, encryptionKeys, serial}. An Error
 * saying which file and what is wrong otherwise.
 */
function loadDirectory(file, authority) {
  let document;
  try {
    document = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: ${err.code ? `cannot read it (${err.code})` : 'not JSON'}`);
  }
  try {
    const keys = contract.directoryKeys(document);
    contract.checkDirectorySignature(document, authority);
    // read only once its signature holds: what is sealed to these keys, the authority vouched for
    return {
      keys, partners: directoryPartners(document), encryptionKeys: encryptionKeys(document),
      serial: document.signed.serial,
    };
  } catch (err) {
    throw new Error(`${file}: ${err.message}`);
  }
}

// -- the contact ------------------------------------------------------------------------------------

// The bounds fr.cepbus.ReferralContact.avsc documents, field by field (min length, max length)
const BOUNDS = {
  first_name: [1, 100], last_name: [1, 100], phone: [6, 25], email: [3, 254], availability: [0, 500],
  situation: [0, 2000], referent_name: [1, 200], referent_contact: [1, 254],
};
const PHONE = /^\+?[0-9][0-9 .()-]*$/;  // digits, spaces, dots, dashes, parentheses and a leading +
const EMAIL = /^[^@\s"<>,;]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/;

const isPhone = (text) => PHONE.test(text) && text.length >= BOUNDS.phone[0] && text.length <= BOUNDS.phone[1];
const isEmail = (text) => EMAIL.test(text) && text.length <= BOUNDS.email[1];

/** A ReferralContact (a plain object) checked against its schema and documented bounds, returned with
 * every field present (null where absent, as the sealed JSON must have them); an Error naming the first
 * bad field otherwise. `type` is the contract's fr.cepbus.ReferralContact. */
function checkContact(type, value) {
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error('a contact is a JSON object');
  }
  const declared = type.fields.map((f) => f.name);
  const extra = Object.keys(value).filter((name) => !declared.includes(name));
  if (extra.length) {
    throw new Error(`unknown fields ${extra.join(', ')} (a ReferralContact has ${declared.join(', ')})`);
  }
  const record = {};
  for (const name of declared) record[name] = value[name] === undefined ? null : value[name];
  const problems = [];
  const errorHook = (at, any) => problems.push(`${at.join('.')}=${JSON.stringify(any)}`);
  if (!type.isValid(record, {errorHook})) {
    throw new Error(`not a ReferralContact: ${problems.join(', ') || 'invalid'}`);
  }
  for (const [name, [min, max]] of Object.entries(BOUNDS)) {
    const text = record[name];
    if (text === null) continue;
    const length = [...text].length;
    if (length < min || length > max) {
      throw new Error(`${name}: ${length} characters, ${min} to ${max} allowed`);
    }
  }
  if (record.phone !== null && !isPhone(record.phone)) {
    throw new Error(`phone: ${JSON.stringify(record.phone)} is not a telephone number`);
  }
  if (record.email !== null && !isEmail(record.email)) {
    throw new Error(`email: ${JSON.stringify(record.email)} is not an email address`);
  }
  if (!isEmail(record.referent_contact) && !isPhone(record.referent_contact)) {
    throw new Error('referent_contact: neither an email address nor a telephone number');
  }
  return record;
}

/** A ReferralContact JSON file, checked (checkContact); an Error saying what is wrong otherwise. */
function readContact(type, file) {
  let value;
  try {
    value = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: ${err.code ? `cannot read it (${err.code})` : 'not JSON'}`);
  }
  try {
    return checkContact(type, value);
  } catch (err) {
    throw new Error(`${file}: ${err.message}`);
  }
}

/** What is sealed: the contact as canonical JSON (sorted keys, no spaces, every field, UTF-8). */
function contactPlaintext(type, contact) {
  return Buffer.from(contract.canonicalJson(checkContact(type, contact), 'contact'), 'utf8');
}

/** HPKE `info`: the tag, then the canonical JSON of what the box is bound to. */
function contactInfo({key_id, recipient_org_id, referral_id, requester_org_id}) {
  const binding = {key_id, recipient_org_id, referral_id, requester_org_id};
  for (const [name, value] of Object.entries(binding)) {
    if (typeof value !== 'string' || !value) throw new Error(`the binding's ${name} is not a string`);
  }
  return Buffer.concat([CONTACT_INFO_TAG, Buffer.from(contract.canonicalJson(binding), 'utf8')]);
}

/** The plaintext sealed to `key` (an entry of encryptionKeys) for this referral: a fr.cepbus.SealedContact
 * value, {recipient_key_id, ciphertext: enc || AEAD ciphertext, ciphertext_sha256}, Buffers. */
async function sealContact(plaintext, key, {referral_id, requester_org_id, recipient_org_id}) {
  if (key.orgId !== recipient_org_id) {
    throw new Error(`key ${key.keyId} is ${key.orgId}'s, not ${recipient_org_id}'s`);
  }
  const info = contactInfo({key_id: key.keyId, recipient_org_id, referral_id, requester_org_id});
  const recipientPublicKey = await suite.kem.importKey('raw', arrayBuffer(key.publicRaw), true);
  const sealed = await suite.seal({recipientPublicKey, info: arrayBuffer(info)}, arrayBuffer(plaintext));
  const ciphertext = Buffer.concat([Buffer.from(sealed.enc), Buffer.from(sealed.ct)]);
  if (ciphertext.length > SEALED_CONTACT_MAX_BYTES) {
    throw new Error(`the sealed contact is ${ciphertext.length} bytes (at most ${SEALED_CONTACT_MAX_BYTES})`);
  }
  const digest = crypto.createHash('sha256').update(ciphertext).digest();
  return {recipient_key_id: key.keyId, ciphertext, ciphertext_sha256: digest};
}

/** The plaintext of a box, for the holder of the raw X25519 private key; throws if it does not open. */
async function openContact(box, privateRaw, info) {
  if (box.length <= ENC_BYTES) throw new Error(`a box of ${box.length} bytes has no ciphertext`);
  const recipientKey = await suite.kem.importKey('raw', arrayBuffer(privateRaw), false);
  return Buffer.from(await suite.open(
    {recipientKey, enc: arrayBuffer(box.subarray(0, ENC_BYTES)), info: arrayBuffer(info)},
    arrayBuffer(box.subarray(ENC_BYTES))));
}

module.exports = {
  CONTACT_INFO_TAG,
  checkContact,
  contactInfo,
  contactPlaintext,
  directoryPartners,
  encryptionKeyId,
  encryptionKeys,
  loadDirectory,
  newestEncryptionKey,
  openContact,
  readContact,
  sealContact,
};
