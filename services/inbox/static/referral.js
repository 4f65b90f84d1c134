// The referral page's "Coordonnées de la personne": the box the requester sealed to the organisation's
// encryption key reaches this page as data (#contact-data), is opened here with the key kept in this
// browser (contact.js), and its fields are written into the page as text. Nothing of it is sent back.
import {ContactUnopened, openContact, PREFERENCE_LABELS} from './contact.js';
import {loadEncryptionKey} from './keystore.js';

const FIELD_LABELS = [
  ['first_name', 'Prénom'],
  ['last_name', 'Nom'],
  ['phone', 'Téléphone'],
  ['email', 'Courriel'],
  ['contact_preference', 'Préférence de contact'],
  ['availability', 'Disponibilités'],
  ['situation', 'Situation'],
  ['referent_name', 'Référent'],
  ['referent_contact', 'Contact du référent'],
];

const sealed = JSON.parse(document.getElementById('contact-data').textContent);
const status = document.getElementById('contact-status');
const fields = document.getElementById('contact-fields');

function say(text, isError = false, link = null) {
  status.textContent = text;
  status.classList.toggle('error', isError);
  if (link) {
    const a = document.createElement('a');
    a.href = sealed.key_page;
    a.textContent = link;
    status.append(' ', a);
  }
}

function show(contact) {
  for (const [name, label] of FIELD_LABELS) {
    const term = document.createElement('dt');
    term.textContent = label;
    const value = document.createElement('dd');
    value.dataset.field = name;
    const text = contact[name];
    value.textContent = name === 'contact_preference' ? PREFERENCE_LABELS[text] : text ?? '—';
    fields.append(term, value);
  }
  fields.hidden = false;
  say(`Coordonnées déchiffrées dans ce navigateur avec la clé ${sealed.key_id}.`);
}

async function main() {
  let record;
  try {
    record = await loadEncryptionKey(sealed.recipient_org_id);
    show(await openContact(sealed, record));
  } catch (error) {
    const reason = error instanceof ContactUnopened ? error.reason : 'failed';
    const id = sealed.key_id;
    if (reason === 'no_key') {
      say(`Coordonnées chiffrées pour la clé ${id} : chargez la clé de chiffrement de l'organisation.`, true,
        'Charger la clé de chiffrement');
    } else if (reason === 'other_key') {
      say(`Coordonnées chiffrées pour la clé ${id} : chargez la clé de chiffrement de l'organisation `
        + `(ce navigateur a la clé ${record.key_id}).`, true, 'Charger la clé de chiffrement');
    } else if (reason === 'unopened') {
      say(`Les coordonnées chiffrées pour la clé ${id} ne s'ouvrent pas : altérées ou destinées à une autre `
        + 'orientation.', true);
    } else {
      say("Les coordonnées n'ont pas pu être déchiffrées dans ce navigateur.", true);
    }
  }
}

main();
