// The export page: fetch the server's CSV (no contact: the server cannot read one), add the person's
// contact to the lines of the referrals received, opened here with the organisation's encryption key
// (csv.js, contact.js), and offer that file for download from this browser (a Blob, an object URL, an
// <a download>). Nothing of a contact is sent anywhere.
import {withContacts} from './csv.js';
import {loadEncryptionKey} from './keystore.js';

const data = JSON.parse(document.getElementById('page-data').textContent);
const status = document.getElementById('export-status');
const button = document.getElementById('export-button');
let record;

/** `n` and the words, each in the plural from 2 on (« 2 orientations reçues »). */
function plural(n, words) {
  return `${n} ${n > 1 ? words.split(' ').map((word) => `${word}s`).join(' ') : words}`;
}

function say(text, isError = false, link = null) {
  status.textContent = text;
  status.classList.toggle('error', isError);
  if (link) {
    const a = document.createElement('a');
    a.href = data.key_page;
    a.textContent = link;
    status.append(' ', a);
  }
}

function describe() {
  const n = data.boxes.length;
  if (n === 0) {
    say('Aucune orientation reçue ne porte de coordonnées : les colonnes des coordonnées seront vides.');
  } else if (!record) {
    say(`Aucune clé de chiffrement de ${data.org_id} dans ce navigateur : les colonnes des coordonnées `
      + `seront vides (${plural(n, 'orientation reçue')} avec coordonnées chiffrées).`, true,
    'Charger la clé de chiffrement');
  } else {
    const other = data.boxes.filter((box) => box.key_id !== record.key_id).length;
    say(`Clé de chiffrement ${record.key_id} chargée : les coordonnées de ${plural(n, 'orientation reçue')} `
      + 'seront déchiffrées dans ce navigateur et ajoutées au fichier'
      + (other ? ` (${other} chiffrée${other > 1 ? 's' : ''} pour une autre clé resteront vides).` : '.'),
    Boolean(other), other ? 'Charger la clé de chiffrement' : null);
  }
}

function offer(text) {
  const url = URL.createObjectURL(new Blob([text], {type: 'text/csv;charset=utf-8'}));
  const link = document.createElement('a');
  link.href = url;
  link.download = data.filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

async function download() {
  button.disabled = true;
  try {
    const response = await fetch(data.csv_url, {credentials: 'same-origin', cache: 'no-store'});
    const type = response.headers.get('content-type') || '';
    if (!response.ok || !type.startsWith('text/csv')) {
      throw new Error(`le serveur n'a pas envoyé l'export (${response.status}) : reconnectez-vous et réessayez`);
    }
    const done = await withContacts(await response.text(), {
      separator: data.separator, contactColumns: data.contact_columns, boxes: data.boxes, record,
    });
    offer(done.text);
    let text = `Fichier ${data.filename} prêt : ${plural(done.lines, 'orientation')}`;
    if (done.sealed === 0) {
      text += ', aucune coordonnée à déchiffrer.';
    } else if (!record) {
      text += ', sans clé de chiffrement dans ce navigateur : colonnes des coordonnées vides.';
    } else {
      text += `, coordonnées déchiffrées dans ce navigateur pour ${done.opened} sur ${done.sealed}.`;
      if (done.unopened.length) {
        text += ` ${plural(done.unopened.length, 'coordonnée')} non déchiffrée${done.unopened.length > 1 ? 's' : ''}`
          + ' (chiffrées pour une autre clé, ou altérées) : colonnes vides.';
      }
    }
    say(text, Boolean(done.sealed && (!record || done.unopened.length)), !record && done.sealed
      ? 'Charger la clé de chiffrement' : null);
  } catch (error) {
    say(`Export impossible : ${error.message}`, true);
  } finally {
    button.disabled = false;
  }
}

async function main() {
  try {
    record = await loadEncryptionKey(data.org_id);
  } catch {
    record = undefined;
  }
  describe();
  button.addEventListener('click', download);
  button.disabled = false;
}

main();
