// The signing page: show the fields, rebuild here the update's statement (its Avro single-object bytes,
// statement.js), sign the batch of one it makes with the key kept in this browser, post only the
// signature and the key's id. The server recomputes the same bytes from its draft and verifies the
// signature against the directory before publishing it as the message's cepbus-signature header.
import {signedFields, toBase64, toHex, toSign} from './statement.js';
import {loadKey, sign} from './keystore.js';

const FIELD_LABELS = {
  event_id: 'Identifiant de la mise à jour',
  event_type: "Type d'événement",
  occurred_at: 'Date (ms depuis 1970)',
  producer_org_id: 'Émise par',
  correlation_id: 'Parcours (corrélation)',
  person_pseudonym: 'Personne (pseudonyme)',
  causation_id: "Cause (demande d'orientation)",
  referral_id: 'Orientation',
  status: 'Étape',
  actor_org_id: 'Auteur',
  reason_code: 'Motif',
  note: 'Commentaire',
  signer_org_id: 'Signataire dans le corps (inutilisé)',
  signature: 'Signature dans le corps (inutilisée)',
};

const data = JSON.parse(document.getElementById('page-data').textContent);
const update = data.update;
const status = document.getElementById('key-status');
const button = document.getElementById('sign-button');
const form = document.getElementById('sign-form');

function say(text, isError = false) {
  status.textContent = text;
  status.classList.toggle('error', isError);
}

function keyLink(text) {
  const link = document.createElement('a');
  link.href = data.key_page;
  link.textContent = text;
  status.append(' ', link);
}

function showFields() {
  const tbody = document.querySelector('#signed-fields tbody');
  for (const [name, value] of signedFields(update)) {
    const row = tbody.insertRow();
    const head = document.createElement('th');
    head.scope = 'row';
    head.textContent = FIELD_LABELS[name] || name;
    row.append(head);
    const cell = row.insertCell();
    const code = document.createElement('code');
    code.textContent = value === null ? '(vide)' : String(value);
    cell.append(code);
    if (name === 'occurred_at') cell.append(` (${new Date(value).toLocaleString('fr-FR')})`);
  }
}

async function main() {
  showFields();
  // the bytes are rebuilt from the fields shown, under the one schema this page encodes
  const {digest, message} = await toSign(update, data.fingerprint);
  document.getElementById('digest').textContent = toHex(digest);
  const e = update.envelope;
  const inName = [e.producer_org_id, update.actor_org_id].every((org) => org === data.org_id);
  if (!inName || ![null, undefined, data.org_id].includes(update.signer_org_id)) {
    say(`Cette mise à jour n'est pas au nom de ${data.org_id} : signature refusée.`, true);
    return;
  }
  const record = await loadKey(data.org_id);
  if (!record) {
    say(`Aucune clé de ${data.org_id} dans ce navigateur.`, true);
    keyLink('Charger la clé');
    return;
  }
  if (!data.directory_keys.some((k) => k.key_id === record.key_id && k.public_key === record.public_key)) {
    say(`La clé chargée (${record.key_id}) n'est pas une clé de ${data.org_id} dans l'annuaire.`, true);
    keyLink('Charger la bonne clé');
    return;
  }
  say(`Clé de ${data.org_id} prête : ${record.key_id}.`);
  button.disabled = false;
  let sent = false;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (sent) return;
    sent = true;
    button.disabled = true;
    try {
      document.getElementById('signature').value = toBase64(await sign(record, message));
      document.getElementById('key-id').value = record.key_id;
      form.submit();
    } catch (error) {
      sent = false;
      button.disabled = false;
      say(`Signature impossible : ${error.message}`, true);
    }
  });
}

main().catch((error) => say(`Signature refusée : ${error.message}`, true));
