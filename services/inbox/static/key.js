// The key page: load the organisation's PEM keys into this browser (non-extractable), or remove them:
// the Ed25519 signing key and the X25519 encryption key, each compared with the directory's.
import {
  forgetEncryptionKey, forgetKey, importEncryptionKey, importKey, loadEncryptionKey, loadKey,
} from './keystore.js';

const data = JSON.parse(document.getElementById('page-data').textContent);
const current = document.getElementById('key-current');
const encCurrent = document.getElementById('enc-current');
const ready = {signing: false, encryption: false};

function listed(keys, record) {
  return keys.find((k) => k.key_id === record.key_id && k.public_key === record.public_key);
}

function offerNext() {
  const next = document.getElementById('key-next');
  const back = data.next && data.next.includes('/sign/') ? ready.signing : ready.encryption || ready.signing;
  if (!data.next || !back) return;
  const link = next.querySelector('a');
  link.href = data.next;
  link.textContent = data.next.includes('/sign/') ? 'Revenir à la signature'
    : data.next === '/export' ? "Revenir à l'export" : "Revenir à l'orientation";
  next.hidden = false;
}

function show(record, isError = false) {
  current.classList.toggle('error', isError);
  ready.signing = Boolean(record && listed(data.directory_keys, record));
  if (!record) {
    current.textContent = `Aucune clé de ${data.org_id} dans ce navigateur.`;
  } else if (ready.signing) {
    current.textContent = `Clé de ${data.org_id} chargée : ${record.key_id}, conforme à l'annuaire.`;
  } else {
    current.classList.add('error');
    current.textContent = `Clé chargée ${record.key_id} : ce n'est pas une clé de ${data.org_id} dans l'annuaire.`;
  }
  offerNext();
}

function showEncryption(record, isError = false) {
  encCurrent.classList.toggle('error', isError);
  const entry = record && listed(data.encryption_keys, record);
  ready.encryption = Boolean(entry);
  if (!record) {
    encCurrent.textContent = `Aucune clé de chiffrement de ${data.org_id} dans ce navigateur.`;
  } else if (entry && entry.valid) {
    encCurrent.textContent = `Clé de chiffrement de ${data.org_id} chargée : ${record.key_id}, conforme à l'annuaire.`;
  } else if (entry) {
    encCurrent.textContent = `Clé de chiffrement de ${data.org_id} chargée : ${record.key_id}, dans l'annuaire mais `
      + "plus valide (expirée ou révoquée) : elle n'ouvre que les coordonnées chiffrées pour elle.";
  } else {
    encCurrent.classList.add('error');
    encCurrent.textContent = `Clé de chiffrement chargée ${record.key_id} : ce n'est pas une clé de chiffrement `
      + `de ${data.org_id} dans l'annuaire.`;
  }
  offerNext();
}

function loader(formId, fileId, status, importer, display) {
  document.getElementById(formId).addEventListener('submit', async (event) => {
    event.preventDefault();
    const input = document.getElementById(fileId);
    const [file] = input.files;
    if (!file) return;
    try {
      display(await importer(data.org_id, await file.text()));
    } catch (error) {
      status.textContent = `Clé refusée : ${error.message}`;
      status.classList.add('error');
    } finally {
      input.value = '';
    }
  });
}

loader('key-form', 'key-file', current, importKey, show);
loader('enc-form', 'enc-file', encCurrent, importEncryptionKey, showEncryption);

document.getElementById('forget-key').addEventListener('click', async () => {
  await forgetKey(data.org_id);
  show(undefined);
});
document.getElementById('forget-enc-key').addEventListener('click', async () => {
  await forgetEncryptionKey(data.org_id);
  showEncryption(undefined);
});

loadKey(data.org_id).then((record) => show(record)).catch(() => show(undefined, true));
loadEncryptionKey(data.org_id).then((record) => showEncryption(record)).catch(() => showEncryption(undefined, true));
