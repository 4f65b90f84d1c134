// The organisation's signing key in this browser: read once from its PKCS#8 PEM file, kept in IndexedDB
// as a non-extractable WebCrypto Ed25519 key (scripts can ask it to sign, nothing can read it back).
import {fromBase64, toBase64, toHex} from './statement.js';

const DB_NAME = 'cepbus-inbox';
const STORE = 'keys';
//  cepbus.trust.keys: key id = first 16 hex of SHA-256("cep-bus/partner-key/v1\n" + org + "\n" + raw public key)
const KEY_ID_TAG = 'cep-bus/partner-key/v1\n';

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function openDb() {
  const req = indexedDB.open(DB_NAME, 1);
  req.onupgradeneeded = () => req.result.createObjectStore(STORE, {keyPath: 'org_id'});
  return request(req);
}

async function withStore(mode, use) {
  const db = await openDb();
  try {
    const tx = db.transaction(STORE, mode);
    const result = await request(use(tx.objectStore(STORE)));
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

export async function keyId(orgId, rawPublic) {
  const tag = new TextEncoder().encode(KEY_ID_TAG + orgId + '\n');
  const message = new Uint8Array(tag.length + rawPublic.length);
  message.set(tag);
  message.set(rawPublic, tag.length);
  return toHex(await crypto.subtle.digest('SHA-256', message)).slice(0, 16);
}

/**
 * Import a PEM key for `orgId`: its public half is read once through a short-lived extractable copy
 * (a PKCS#8 Ed25519 file need not carry it), then the key is imported again non-extractable, which is
 * the only copy kept. Returns the stored record {org_id, key, public_key, key_id, loaded_at}.
 */
export async function importKey(orgId, pemText) {
  const der = pemToDer(pemText);
  const readable = await crypto.subtle.importKey('pkcs8', der, {name: 'Ed25519'}, true, ['sign']);
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
  await withStore('readwrite', (store) => store.put(record));
  return record;
}

/** The stored record of `orgId`'s key, or undefined. */
export function loadKey(orgId) {
  return withStore('readonly', (store) => store.get(orgId));
}

export function forgetKey(orgId) {
  return withStore('readwrite', (store) => store.delete(orgId));
}

/** The Ed25519 signature (Uint8Array, 64 bytes) of `bytes` by the stored key. */
export async function sign(record, bytes) {
  return new Uint8Array(await crypto.subtle.sign('Ed25519', record.key, bytes));
}
