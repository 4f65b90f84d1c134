// The bytes an organisation signs for a ReferralStatusChanged, computed in the browser from the
// update's fields: a port of cepbus.contract.signatures.canonical_status_bytes (and of
// tests/node/lib/contract.js canonicalStatusBytes, written for Node's Buffer).
//
//   tag "cep-bus/referral-status/v1", then for each field a 4-byte big-endian length and its UTF-8
//   bytes (absent = empty), in this order: event_id, event_type, occurred_at (ms since the epoch,
//   decimal), producer_org_id, correlation_id, person_pseudonym, causation_id, referral_id, status,
//   actor_org_id, reason_code, note, signer_org_id.
//
// The page computes these bytes itself rather than taking bytes from the server: what is signed is
// exactly what the page shows (signedFields), and a server cannot slip other bytes under a signature.
export const SIGNATURE_TAG = 'cep-bus/referral-status/v1';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** [name, value] of each signed field, in signing order (values as strings, absent = ''). */
export function signedFields(update) {
  const e = update.envelope;
  if (!UUID.test(e.event_id)) throw new Error(`event_id must be a lowercase hyphenated UUID, got ${e.event_id}`);
  if (!Number.isSafeInteger(e.occurred_at)) throw new Error(`occurred_at must be integer milliseconds, got ${e.occurred_at}`);
  const text = (value) => (value == null ? '' : String(value));
  return [
    ['event_id', e.event_id],
    ['event_type', text(e.event_type)],
    ['occurred_at', String(e.occurred_at)],
    ['producer_org_id', text(e.producer_org_id)],
    ['correlation_id', text(e.correlation_id)],
    ['person_pseudonym', text(e.person_pseudonym)],
    ['causation_id', text(e.causation_id)],
    ['referral_id', text(update.referral_id)],
    ['status', text(update.status)],
    ['actor_org_id', text(update.actor_org_id)],
    ['reason_code', text(update.reason_code)],
    ['note', text(update.note)],
    ['signer_org_id', text(update.signer_org_id)],
  ];
}

/** The canonical bytes (a Uint8Array) of an update given as {envelope: {...}, referral_id, ...}. */
export function canonicalStatusBytes(update) {
  const encoder = new TextEncoder();
  const parts = [encoder.encode(SIGNATURE_TAG)];
  for (const [, value] of signedFields(update)) {
    const raw = encoder.encode(value);
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, raw.length, false);
    parts.push(length, raw);
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
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
