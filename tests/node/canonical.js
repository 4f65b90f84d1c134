// Loads every .avsc of a folder into one avsc registry (a name defined twice is an error, as in any
// registry) and prints {full name: Parsing Canonical Form} for every record, as JSON on stdout.
'use strict';
const fs = require('fs');
const path = require('path');
const avro = require('avsc');

const dir = process.argv[2];
const pending = fs.readdirSync(dir).filter((f) => f.endsWith('.avsc')).sort()
  .map((f) => ({file: f, schema: JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'))}));
const registry = {};
const records = {};
let progress = true;
while (pending.length && progress) {  // a file may reference a type of a later file: retry until stuck
  progress = false;
  for (let i = 0; i < pending.length; i++) {
    const {file, schema} = pending[i];
    const before = new Set(Object.keys(registry));
    let type;
    try {
      type = avro.Type.forSchema(schema, {registry: Object.assign({}, registry)});
    } catch (err) {
      if (/undefined type name/.test(err.message)) continue;
      throw new Error(`${file}: ${err.message}`);
    }
    // register what this file defines; a name already there is a second definition
    const mine = {};
    avro.Type.forSchema(schema, {registry: Object.assign(mine, registry)});
    for (const name of Object.keys(mine)) {
      if (before.has(name)) continue;
      if (registry[name]) throw new Error(`duplicate type name ${name} (${file})`);
      registry[name] = mine[name];
    }
    if (type.typeName === 'record') records[type.name] = JSON.stringify(type.schema());
    pending.splice(i, 1);
    i--;
    progress = true;
  }
}
if (pending.length) throw new Error(`unresolved: ${pending.map((p) => p.file).join(', ')}`);
process.stdout.write(JSON.stringify(records));
