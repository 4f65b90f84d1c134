// The person's contact on a referral, sealed by the requester to the recipient's encryption key
// (docs/referrals.md, "The person's contact, sealed to the recipient"), opened here, in the recipient's
// browser, with the organisation's non-extractable X25519 key (keystore.js): the inbox server passes
// the box along and never sees what is in it.
//
// HPKE (RFC 9180) base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, empty AAD, with
// the vendored @hpke/core; the box is `enc` (32 bytes) followed by the AEAD ciphertext. HPKE's `info`
// is "cep-bus/contact/v1" 0x00 then the canonical JSON (sorted keys, no spaces, UTF-8) of
// {key_id, recipient_org_id, referral_id, requester_org_id}: a box moved to another referral,
// requester, recipient or key does not open. What opens is a fr.cepbus.ReferralContact as JSON.
import {Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256} from './vendor/hpke/core/mod.js';
import {fromBase64, toHex} from './statement.js';

export const CONTACT_INFO_TAG = 'cep-bus/contact/v1\u0000';
const ENC_BYTES = 32;
//  fr.cepbus.ReferralContact: [field, required]; a null optional field is absent
export const CONTACT_FIELDS = [
  ['first_name', true], ['last_name', true], ['phone', false], ['email', false],
  ['contact_preference', true], ['availability', false], ['situation', false],
  ['referent_name', true], ['referent_contact', true],
];
export const CONTACT_PREFERENCES = ['telephone', 'email', 'referent', 'other'];
/** How the person prefers to be contacted, in French (the referral page and the export). */
export const PREFERENCE_LABELS = {
  telephone: 'Par téléphone',
  email: 'Par courriel',
  referent: 'Par l’intermédiaire du référent',
  other: 'Autre',
};

/** Why a box was not opened: `reason` is 'no_key' (none loaded for the organisation), 'other_key'
 * (the loaded key is not the one the box is sealed to) or 'unopened' (altered, or bound to another
 * referral, requester, recipient or key). */
export class ContactUnopened extends Error {
  constructor(reason, message) {
    super(message);
    this.reason = reason;
  }
}

/** HPKE `info` (Uint8Array) of a box bound to this referral, its parties and the recipient's key id. */
export function contactInfo({key_id, recipient_org_id, referral_id, requester_org_id}) {
  const binding = {key_id, recipient_org_id, referral_id, requester_org_id}; // sorted keys, as written
  for (const [name, value] of Object.entries(binding)) {
    if (typeof value !== 'string' || !value) throw new Error(`the binding's ${name} is not a string`);
  }
  return new TextEncoder().encode(CONTACT_INFO_TAG + JSON.stringify(binding));
}

/** A ReferralContact from the opened JSON, every field checked; ContactUnopened otherwise. */
export function parseContact(plaintext) {
  let value;
  try {
    value = JSON.parse(new TextDecoder('utf-8', {fatal: true}).decode(plaintext));
  } catch {
    throw new ContactUnopened('unopened', 'the opened contact is not UTF-8 JSON');
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new ContactUnopened('unopened', 'the opened contact is not a JSON object');
  }
  const known = new Set(CONTACT_FIELDS.map(([name]) => name));
  const unknown = Object.keys(value).filter((name) => !known.has(name));
  if (unknown.length) throw new ContactUnopened('unopened', `the opened contact has unknown fields ${unknown}`);
  const contact = {};
  for (const [name, required] of CONTACT_FIELDS) {
    const field = value[name] ?? null;
    if (field === null ? required : typeof field !== 'string' || (required && !field)) {
      throw new ContactUnopened('unopened', `the opened contact's ${name} is not valid`);
    }
    contact[name] = field;
  }
  if (!CONTACT_PREFERENCES.includes(contact.contact_preference)) {
    throw new ContactUnopened('unopened', "the opened contact's contact_preference is not valid");
  }
  return contact;
}

const suite = new CipherSuite({kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm()});

/** A fresh ArrayBuffer holding exactly these bytes. */
function arrayBuffer(bytes) {
  return new Uint8Array(bytes).buffer;
}

/**
 * The contact of a sealed box `sealed` = {key_id, ciphertext_b64, ciphertext_sha256_hex, referral_id,
 * requester_org_id, recipient_org_id} (what the referral page gives), opened with `record`, the stored
 * encryption key of the organisation (keystore.loadEncryptionKey), or ContactUnopened saying why not.
 */
export async function openContact(sealed, record) {
  if (!record) throw new ContactUnopened('no_key', 'no encryption key in this browser');
  if (record.key_id !== sealed.key_id) {
    throw new ContactUnopened('other_key', `sealed to key ${sealed.key_id}, not to ${record.key_id}`);
  }
  let box;
  try {
    box = fromBase64(sealed.ciphertext_b64);
  } catch {
    throw new ContactUnopened('unopened', 'the box is not base64');
  }
  const digest = toHex(await crypto.subtle.digest('SHA-256', box));
  if (digest !== sealed.ciphertext_sha256_hex || box.length <= ENC_BYTES) {
    throw new ContactUnopened('unopened', 'the box does not match its digest: altered');
  }
  let plaintext;
  try {
    // the key pair the library decapsulates with: the stored non-extractable private key, and its
    // public half (HPKE's KEM context), imported from the record
    const publicKey = await crypto.subtle.importKey('raw', fromBase64(record.public_key), {name: 'X25519'}, true, []);
    plaintext = await suite.open(
      {
        recipientKey: {privateKey: record.key, publicKey},
        enc: arrayBuffer(box.subarray(0, ENC_BYTES)),
        info: arrayBuffer(contactInfo(sealed)),
      },
      arrayBuffer(box.subarray(ENC_BYTES)),
    );
  } catch {
    throw new ContactUnopened('unopened', 'the box does not open: altered, or sealed for another referral');
  }
  return parseContact(new Uint8Array(plaintext));
}
