// Validates an AsyncAPI document with @asyncapi/parser (v3 API) and the Avro schema parser, then loads
// every Avro payload with avsc: with AsyncAPI 3 the parser converts Avro payloads to JSON Schema but
// runs no Avro validation, and a type name it cannot resolve silently becomes an empty schema.
//   node asyncapi-validate.js docs/asyncapi/asyncapi.yaml [--canonical-forms]
// Exit 1 with the errors on stderr when the document has one; else exit 0 and a JSON summary on stdout
// (counts, the diagnostics that are not errors; with --canonical-forms each payload's Parsing Canonical
// Form as avsc computes it, which tests/unit/contract/test_asyncapi.py compares with the contract's).
'use strict';
const path = require('path');
const {Parser, fromFile} = require('@asyncapi/parser');
const {AvroSchemaParser} = require('@asyncapi/avro-schema-parser');
const avro = require('avsc');

const SEVERITY = ['error', 'warning', 'information', 'hint'];
const MAX_SHOWN = 40;  // one wrong schema can make hundreds of diagnostics

function describe(diagnostic) {
  const where = (diagnostic.path || []).join('.') || '(document)';
  return `${SEVERITY[diagnostic.severity] || diagnostic.severity} ${diagnostic.code || ''} at ${where}: ${diagnostic.message}`;
}

async function main(file, canonicalForms) {
  if (!file) {
    process.stderr.write('usage: node asyncapi-validate.js <asyncapi.yaml> [--canonical-forms]\n');
    return 2;
  }
  const parser = new Parser();
  parser.registerSchemaParser(AvroSchemaParser());
  const {document, diagnostics} = await fromFile(parser, path.resolve(file)).parse();
  const errors = diagnostics.filter((d) => d.severity === 0).map(describe);
  if (document) {
    errors.push(...avroErrors(document));
  }
  if (!document || errors.length) {
    const shown = errors.slice(0, MAX_SHOWN).join('\n');
    const more = errors.length > MAX_SHOWN ? `\n... and ${errors.length - MAX_SHOWN} more` : '';
    process.stderr.write(`${path.basename(file)}: ${errors.length} error(s)\n${shown}${more}\n`);
    return 1;
  }
  const payloads = {};
  for (const message of canonicalForms ? document.messages().all() : []) {
    const original = originalPayload(message);
    if (original) {
      const type = avro.Type.forSchema(original);
      payloads[type.name] = JSON.stringify(type.schema());
    }
  }
  process.stdout.write(JSON.stringify({
    asyncapi: document.version(),
    servers: document.servers().length,
    channels: document.channels().length,
    operations: document.operations().length,
    messages: document.messages().length,
    securitySchemes: document.components().securitySchemes().length,
    diagnostics: diagnostics.filter((d) => d.severity !== 0).map(describe),
    ...(canonicalForms ? {payloads} : {}),
  }) + '\n');
  return 0;
}

// The Avro schema as written (after $ref resolution), which the parser keeps beside its JSON Schema.
function originalPayload(message) {
  const payload = message.json().payload;
  if (!payload || !/^application\/vnd\.apache\.avro/.test(payload.schemaFormat || '')) return null;
  return payload['x-parser-original-payload'] || null;
}

function avroErrors(document) {
  const errors = [];
  for (const message of document.messages().all()) {
    const payload = message.json().payload;
    const format = payload && payload.schemaFormat;
    if (!format || !/^application\/vnd\.apache\.avro/.test(format)) {
      errors.push(`error at message ${message.id()}: payload is not an Avro schema (schemaFormat ${format})`);
      continue;
    }
    try {
      avro.Type.forSchema(originalPayload(message));
    } catch (err) {
      errors.push(`error at message ${message.id()}: Avro payload does not load in avsc: ${err.message}`);
    }
  }
  return errors;
}

main(process.argv[2], process.argv.includes('--canonical-forms')).then((code) => { process.exitCode = code; }, (err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exitCode = 1;
});
