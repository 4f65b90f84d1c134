// The organisation's keys in this browser, each read once from its PKCS#8 PEM file and kept in IndexedDB
// as a non-extractable WebCrypto key (scripts can ask it to sign or to agree a secret, nothing can read
// it back): the Ed25519 signing key (store `keys`) and the X25519 encryption key the person's contact
// is sealed to (store `encryption-keys`, opened by contact.js), one of each per organisation.
import {fromBase64, toBase64, toHex} from './statement.js';

const DB_NAME = 'cepbus-inbox';
//  version 1 had the signing keys only; version 2 adds the encryption keys beside them
const DB_VERSION = 2;
const STORE = 'keys';
const ENCRYPTION_STORE = 'encryption-keys';
//  cepbus.trust.keys: key id = first 16 hex of SHA-256("cep-bus/partner-key/v1\n" + org + "\n" + raw public key)
const KEY_ID_TAG = 'cep-bus/partner-key/v1\n';
//  cepbus.trust.keys: encryption key id, the same with its own tag (a signing and an encryption key
//  never share an id)
const ENCRYPTION_KEY_ID_TAG = 'cep-bus/partner-encryption-key/v1\n';
//  X25519's base point (u = 9): X25519(k, 9) is the public key of k (RFC 7748)
const X25519_BASE_POINT = Uint8Array.from({length: 32}, (_, i) => (i === 0 ? 9 : 0));

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function openDb() {
  const req = indexedDB.open(DB_NAME, DB_VERSION);
  req.onupgradeneeded = () => {
    const db = req.result;
    for (const name of [STORE, ENCRYPTION_STORE]) {
      if (!db.objectStoreNames.contains(name)) db.createObjectStore(name, {keyPath: 'org_id'});
    }
  };
  return request(req);
}

async function withStore(name, mode, use) {
  const db = await openDb();
  try {
    const tx = db.transaction(name, mode);
    const result = await request(use(tx.objectStore(name)));
    await new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
    return result;
  } finally {
    db.close();
  }
}

/** The PKCS#8 DER bytes of a "-----BEGIN PRIVATE KEY-----" PEM text. */
export function pemToDer(text) {
  const match = /-----BEGIN PRIVATE KEY-----([A-Za-z0-9+/=\s]+)-----END PRIVATE KEY-----/.exec(text);
  if (!match) throw new Error("ce fichier n'est pas une clé privée PEM PKCS#8 (« BEGIN PRIVATE KEY »)");
  return fromBase64(match[1]);
}

async function taggedKeyId(tagText, orgId, rawPublic) {
  const tag = new TextEncoder().encode(tagText + orgId + '\n');
  const message = new Uint8Array(tag.length + rawPublic.length);
  message.set(tag);
  message.set(rawPublic, tag.length);
  return toHex(await crypto.subtle.digest('SHA-256', message)).slice(0, 16);
}

export function keyId(orgId, rawPublic) {
  return taggedKeyId(KEY_ID_TAG, orgId, rawPublic);
}

export function encryptionKeyId(orgId, rawPublic) {
  return taggedKeyId(ENCRYPTION_KEY_ID_TAG, orgId, rawPublic);
}

/**
 * Import a PEM key for `orgId`: its public half is read once through a short-lived extractable copy
 * (a PKCS#8 Ed25519 file need not carry it), then the key is imported again non-extractable, which is
 * the only copy kept. Returns the stored record {org_id, key, public_key, key_id, loaded_at}.
 */
export async function importKey(orgId, pemText) {
  const der = pemToDer(pemText);
  let readable;
  try {
    readable = await crypto.subtle.importKey('pkcs8', der, {name: 'Ed25519'}, true, ['sign']);
  } catch {
    der.fill(0);
    throw new Error("ce fichier n'est pas une clé de signature Ed25519 (PEM PKCS#8)");
  }
  const jwk = await crypto.subtle.exportKey('jwk', readable);
  const rawPublic = fromBase64(jwk.x);
  const key = await crypto.subtle.importKey('pkcs8', der, {name: 'Ed25519'}, false, ['sign']);
  der.fill(0);
  const record = {
    org_id: orgId,
    key,
    public_key: toBase64(rawPublic),
    key_id: await keyId(orgId, rawPublic),
    loaded_at: new Date().toISOString(),
  };
  await withStore(STORE, 'readwrite', (store) => store.put(record));
  return record;
}

/** The stored record of `orgId`'s key, or undefined. */
export function loadKey(orgId) {
  return withStore(STORE, 'readonly', (store) => store.get(orgId));
}

export function forgetKey(orgId) {
  return withStore(STORE, 'readwrite', (store) => store.delete(orgId));
}

/** The Ed25519 signature (Uint8Array, 64 bytes) of `bytes` by the stored key. */
export async function sign(record, bytes) {
  return new Uint8Array(await crypto.subtle.sign('Ed25519', record.key, bytes));
}

/**
 * Import the organisation's X25519 encryption key (PEM PKCS#8) for `orgId`, non-extractable, with the
 * one use a recipient needs (`deriveBits`: HPKE's key agreement). Its public half is computed from the
 * stored key itself (X25519 with the base point), so no extractable copy is ever made. Returns the
 * stored record {org_id, key, public_key, key_id, loaded_at}.
 */
export async function importEncryptionKey(orgId, pemText) {
  const der = pemToDer(pemText);
  let key;
  try {
    key = await crypto.subtle.importKey('pkcs8', der, {name: 'X25519'}, false, ['deriveBits']);
  } catch {
    throw new Error("ce fichier n'est pas une clé de chiffrement X25519 (PEM PKCS#8)");
  } finally {
    der.fill(0);
  }
  const basePoint = await crypto.subtle.importKey('raw', X25519_BASE_POINT, {name: 'X25519'}, true, []);
  const rawPublic = new Uint8Array(await crypto.subtle.deriveBits({name: 'X25519', public: basePoint}, key, 256));
  const record = {
    org_id: orgId,
    key,
    public_key: toBase64(rawPublic),
    key_id: await encryptionKeyId(orgId, rawPublic),
    loaded_at: new Date().toISOString(),
  };
  await withStore(ENCRYPTION_STORE, 'readwrite', (store) => store.put(record));
  return record;
}

/** The stored record of `orgId`'s encryption key, or undefined. */
export function loadEncryptionKey(orgId) {
  return withStore(ENCRYPTION_STORE, 'readonly', (store) => store.get(orgId));
}

export function forgetEncryptionKey(orgId) {
  return withStore(ENCRYPTION_STORE, 'readwrite', (store) => store.delete(orgId));
}
