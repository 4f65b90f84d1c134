// The export's CSV as the inbox writes it (services/inbox/export.py), read and rewritten here so that the
// page can add the person's contact, opened in this browser, to the lines of the referrals received:
// fields separated by the page's separator (`;`), lines ending in CRLF, a field quoted (a `"` doubled)
// only when it holds the separator, a `"` or a line break (Python's csv.QUOTE_MINIMAL): the server's
// fields come out as the server wrote them, the contact's columns after them.
import {ContactUnopened, openContact, PREFERENCE_LABELS} from './contact.js';

export const BOM = '\ufeff';
const LINE_END = '\r\n';
//  what a spreadsheet takes for the start of a formula: such a field is written with a leading '
const FORMULA_START = ['=', '+', '-', '@', '\t', '\r'];

/** A field as written: text a spreadsheet would take for a formula gets a leading `'`. */
export function cell(text) {
  return FORMULA_START.some((start) => text.startsWith(start)) ? `'${text}` : text;
}

/** The rows (arrays of strings) of a CSV text; a leading byte order mark is dropped. */
export function parseCsv(text, separator) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  let fieldStart = true;
  let i = text.startsWith(BOM) ? 1 : 0;
  const endField = () => {
    row.push(field);
    field = '';
    fieldStart = true;
  };
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 2;
      } else if (c === '"') {
        quoted = false;
        i += 1;
      } else {
        field += c;
        i += 1;
      }
    } else if (c === '"' && fieldStart) {
      quoted = true;
      fieldStart = false;
      i += 1;
    } else if (c === separator) {
      endField();
      i += 1;
    } else if (c === '\r' || c === '\n') {
      endField();
      rows.push(row);
      row = [];
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
    } else {
      field += c;
      fieldStart = false;
      i += 1;
    }
  }
  if (quoted) throw new Error('CSV : champ entre guillemets non terminé');
  if (!fieldStart || row.length) {
    endField();
    rows.push(row);
  }
  return rows;
}

/** The CSV text of `rows` (no byte order mark). */
export function formatCsv(rows, separator) {
  const quote = (field) => (field.includes(separator) || /["\r\n]/.test(field)
    ? `"${field.replaceAll('"', '""')}"` : field);
  return rows.map((row) => row.map(quote).join(separator) + LINE_END).join('');
}

/**
 * The server's export `csvText` with the contact columns added: `contactColumns` ([field, header]) after
 * the server's, filled on the lines whose referral has a box in `boxes` (the page's data) that opens
 * with `record` (the organisation's stored encryption key, or undefined), empty on the others.
 * Returns {text (with its byte order mark), lines, opened, unopened: [reason...], sealed}.
 */
export async function withContacts(csvText, {separator, contactColumns, boxes, record}) {
  const [header, ...lines] = parseCsv(csvText, separator);
  if (!header || header[0] !== 'Orientation') throw new Error("ce n'est pas l'export des orientations");
  const byReferral = new Map(boxes.map((box) => [box.referral_id, box]));
  const empty = contactColumns.map(() => '');
  const rows = [[...header, ...contactColumns.map(([, title]) => title)]];
  const unopened = [];
  let opened = 0;
  let sealed = 0;
  for (const line of lines) {
    const box = byReferral.get(line[0]);
    if (!box) {
      rows.push([...line, ...empty]);
      continue;
    }
    sealed += 1;
    try {
      const contact = await openContact(box, record);
      rows.push([...line, ...contactColumns.map(([name]) => {
        const value = contact[name];
        if (value === null || value === undefined) return '';
        return cell(name === 'contact_preference' ? PREFERENCE_LABELS[value] : value);
      })]);
      opened += 1;
    } catch (error) {
      unopened.push(error instanceof ContactUnopened ? error.reason : 'failed');
      rows.push([...line, ...empty]);
    }
  }
  return {text: BOM + formatCsv(rows, separator), lines: lines.length, opened, unopened, sealed};
}
