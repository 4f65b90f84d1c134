// The key page: load the organisation's PEM key into this browser (non-extractable), or remove it.
import {forgetKey, importKey, loadKey} from './keystore.js';

const data = JSON.parse(document.getElementById('page-data').textContent);
const current = document.getElementById('key-current');

function inDirectory(record) {
  return data.directory_keys.some((k) => k.key_id === record.key_id && k.public_key === record.public_key);
}

function show(record, isError = false) {
  current.classList.toggle('error', isError);
  if (!record) {
    current.textContent = `Aucune clé de ${data.org_id} dans ce navigateur.`;
  } else if (inDirectory(record)) {
    current.textContent = `Clé de ${data.org_id} chargée : ${record.key_id}, conforme à l'annuaire.`;
  } else {
    current.classList.add('error');
    current.textContent = `Clé chargée ${record.key_id} : ce n'est pas une clé de ${data.org_id} dans l'annuaire.`;
  }
  const next = document.getElementById('key-next');
  if (record && inDirectory(record) && data.next) {
    next.querySelector('a').href = data.next;
    next.hidden = false;
  }
}

document.getElementById('key-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const [file] = document.getElementById('key-file').files;
  if (!file) return;
  try {
    show(await importKey(data.org_id, await file.text()));
  } catch (error) {
    current.textContent = `Clé refusée : ${error.message}`;
    current.classList.add('error');
  } finally {
    document.getElementById('key-file').value = '';
  }
});

document.getElementById('forget-key').addEventListener('click', async () => {
  await forgetKey(data.org_id);
  show(undefined);
});

loadKey(data.org_id).then((record) => show(record)).catch((error) => show(undefined, true));
