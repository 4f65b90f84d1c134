// A non-Python client of the bus, written from schemas/avro/ and the docs alone (kafkajs + avsc):
// an operator's information system and a partner's, in one program.
//
//   1. as the operator (a regional CEP operator): publish an IntakeRegistered for a person who must be
//      told about a specialised operator, read the informed-choice notice the bus issues for them
//      (NoticeIssued by the notifier: the text the person receives) on its own notice inbox, the only
//      notices its KafkaUser may read, then publish the person's ChoiceRecorded: switch to that operator;
//   2. as the partner (the chosen operator): read the ReferralRequested the router puts in its inbox,
//      answer with ReferralStatusChanged updates (received, then accepted: the first steps
//      docs/referrals.md allows from `requested`, sent together as one signed batch of two), then a
//      step the lifecycle does not allow (completed while accepted), and read the router's refusal on
//      its rejection topic, which also tells the state the two first updates left the referral in;
//   3. with --contact and --contact-partner only: as the operator again, publish a ReferralRequested to
//      a local partner of the directory (--contact-partner: Transitions Pro, SPRO, OPCO..., not a CEP
//      operator; its kind as the directory lists it) for the same person, made with their consent and
//      carrying their contact (--contact, a fr.cepbus.ReferralContact JSON file) sealed with HPKE
//      (@hpke/core) to the partner's newest encryption key valid now in the VERIFIED directory
//      (`signed.encryption_keys`; lib/sealed-contact.js); the router checks the box is sealed to a
//      valid key of the recipient and passes it on unchanged to the partner's inbox. A partner with no
//      valid encryption key (none listed, expired or revoked) is refused at start, before anything is
//      sent: one line naming it, exit 1;
//   4. print one JSON line of what it saw and sent; exit 0. Exit 2 on timeout, 1 on any other error.
//
// Every event it sends carries its author's statement signature in the `cepbus-signature` header
// (docs/contract.md, "Every statement signed by its author"): the operator's key signs the intake and
// the choice (and step 3's referral), the partner's the updates; the updates carry no in-body signature
// (signer_org_id and signature stay null: superseded). Every message it reads must carry its AUTHOR's
// statement signature: the router writes the notice inbox, the referral inbox and the rejection topic,
// but passes the events it routes on unchanged, with their author's signature (a notice is the
// notifier's, a referral its requester's or, derived from a person's choice, the router's; a refusal is
// the router's own). So each is verified with the directory key its header names (valid when read), and
// the key's organisation must be the event's envelope.producer_org_id. One that does not hold is set
// aside, reported under `unverified` with the bus's reason (`unsigned`, `malformed_signature`,
// `unknown_key`, `key_not_valid`, `bad_signature`, `misattributed`), and never acted on.
//
// Options: USAGE below; each may also come from the environment (--partner-seed from
// CEPBUS_NODE_PARTNER_SEED, ..., --bootstrap from CEPBUS_BOOTSTRAP_SERVERS too). --framing is the
// framing this client SENDS; it reads both. The seeds are the organisations' raw Ed25519 private keys,
// hex; --directory is the bus's directory file (cep-bus-directory/N JSON; the packaged development one
// is cepbus/reference/data/directory.json), whose `signed.keys` are the keys it verifies what it reads
// with; --authority is the directory authority's pinned key (`cep-bus-directory+<id>+<base64>`, as
// CEPBUS_DIRECTORY_AUTHORITY_KEY), and the file is read only if that key signed it (the canonical bytes
// of its `signed` body, as cepbus/reference/directory.py signs them); the partners and the encryption
// keys a contact is sealed to are taken from that same signed body. --contact and --contact-partner go
// together (or not at all).
'use strict';

const crypto = require('crypto');
const path = require('path');
const {Kafka, Partitioners, logLevel} = require('kafkajs');
const contract = require('./lib/contract');
const sealedContact = require('./lib/sealed-contact');

const TOPICS = {
  intake: 'cep.intake.registered',
  noticeInbox: (org) => `cep.notice.inbox.${org}`,
  choice: 'cep.choice.recorded',
  requested: 'cep.referral.requested',
  status: 'cep.referral.status',
  inbox: (org) => `cep.referral.inbox.${org}`,
  rejected: (org) => `cep.referral.rejected.${org}`,
};
const CORRELATION_HEADER = 'cepbus-correlation-id';
const EVENT_TYPE_HEADER = 'cepbus-event-type';
// W3C Trace Context: the client starts one trace and sends every event in it (its own span each);
// the bus continues it into what it derives (docs/contract.md, "Headers")
const TRACEPARENT_HEADER = 'traceparent';
const TRACE_ID = crypto.randomBytes(16).toString('hex');
const traceparent = () => `00-${TRACE_ID}-${crypto.randomBytes(8).toString('hex')}-01`;

const USAGE = `usage: node client.js --bootstrap HOST:PORT[,...] --operator ORG --operator-seed HEX64
  --partner ORG --partner-seed HEX64 --directory PATH --authority KEY --person PSEUDONYM [--schemas DIR]
  [--partner-kind apec] [--region 84] [--departement 69] [--framing single-object|confluent] [--timeout 60]
  [--contact PATH --contact-partner ORG]
`;

class Timeout extends Error {}
class Usage extends Error {}
class Refused extends Error {}  // what it was asked cannot be done as the contract says: said in one line

function options(argv) {
  const defaults = {
    bootstrap: process.env.CEPBUS_BOOTSTRAP_SERVERS,
    schemas: path.resolve(__dirname, '..', '..', 'schemas', 'avro'),
    'partner-kind': 'apec', region: '84', departement: '69', framing: 'single-object', timeout: '60',
    contact: null, 'contact-partner': null,  // optional: step 3 runs only with both
  };
  const names = ['bootstrap', 'schemas', 'operator', 'operator-seed', 'partner', 'partner-seed',
    'directory', 'authority', 'person', 'partner-kind', 'region', 'departement', 'framing', 'timeout',
    'contact', 'contact-partner'];
  const opts = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) throw new Usage(`bad argument ${argv[i]}`);
    const name = argv[i].slice(2);
    if (name === 'router-key') {  // the readers trusted only the router's key once; no longer
      throw new Usage('--router-key is gone: give --directory PATH, the directory whose keys verify each author');
    }
    if (!names.includes(name)) throw new Usage(`unknown option --${name}`);
    opts[name] = argv[i + 1];
  }
  for (const name of names) {
    const env = process.env[`CEPBUS_NODE_${name.toUpperCase().replace(/-/g, '_')}`];
    opts[name] = opts[name] ?? env ?? defaults[name];
    if (opts[name] === undefined) throw new Usage(`missing --${name}`);
  }
  if (!['single-object', 'confluent'].includes(opts.framing)) throw new Usage(`unknown framing ${opts.framing}`);
  // bad keys fail here, before anything is sent
  for (const [name, org] of [['operator-seed', opts.operator], ['partner-seed', opts.partner]]) {
    try {
      opts[name] = contract.statementSigner(org, opts[name]);
    } catch (err) {
      throw new Usage(`--${name}: ${err.message}`);
    }
  }
  try {  // the directory authority's key, pinned: the directory file is read only if it signed it
    opts.authority = contract.parseAuthorityKey(opts.authority);
  } catch (err) {
    throw new Usage(`--authority: ${err.message}`);
  }
  let directory;
  try {  // keys: key id -> {orgId, publicKey, notBefore, notAfter, revokedAt}; partners; encryption keys
    directory = sealedContact.loadDirectory(opts.directory, opts.authority);
  } catch (err) {
    throw new Usage(`--directory: ${err.message}`);
  }
  opts.directory = directory.keys;
  opts.contact = contactStep(opts, directory);
  return opts;
}

/** Step 3's inputs, checked before anything is sent (null without --contact): the contact, the partner
 * (a local partner of the directory) and its newest encryption key valid now. */
function contactStep(opts, directory) {
  if ((opts.contact === null) !== (opts['contact-partner'] === null)) {
    throw new Usage('--contact and --contact-partner go together');
  }
  if (opts.contact === null) return null;
  const recipient = directory.partners.get(opts['contact-partner']);
  if (!recipient) {
    throw new Usage(`--contact-partner: ${opts['contact-partner']} is not a local partner of the directory ` +
      '(signed.partners: a Transitions Pro, SPRO, OPCO..., not a CEP operator)');
  }
  const contactType = contract.loadContract(opts.schemas, {released: false}).types['fr.cepbus.ReferralContact'];
  let contact;
  try {
    contact = sealedContact.readContact(contactType, opts.contact);
  } catch (err) {
    throw new Usage(`--contact: ${err.message}`);
  }
  const now = Date.now();
  const key = sealedContact.newestEncryptionKey(directory.encryptionKeys, recipient.orgId, now);
  if (!key) {
    const listed = (directory.encryptionKeys.get(recipient.orgId) || []).map((k) => k.keyId);
    const why = listed.length ? `its keys ${listed.join(', ')} are revoked, expired or not yet valid`
      : 'it has none listed';
    throw new Refused(`${recipient.orgId} has no valid encryption key in the directory (serial ` +
      `${directory.serial}) at ${new Date(now).toISOString()}: ${why}; the contact cannot be sealed to it, ` +
      'nothing was sent');
  }
  return {recipient, key, plaintext: sealedContact.contactPlaintext(contactType, contact)};
}

/** An envelope as docs/contract.md describes it: event_type is the payload's full name, occurred_at
 * milliseconds since the epoch, the person pseudonym set (it is the partition key); a derived event
 * inherits correlation and person from its cause and names it in causation_id. */
function envelope(eventType, producer, {person, cause} = {}) {
  const eventId = crypto.randomUUID();
  return {
    event_id: eventId,
    event_type: eventType,
    occurred_at: Date.now(),
    producer_org_id: producer,
    correlation_id: cause ? cause.correlation_id : eventId,
    person_pseudonym: person ?? (cause ? cause.person_pseudonym : null),
    causation_id: cause ? cause.event_id : null,
  };
}

/** The decoded messages of our person, and waits for the first one matching a predicate. A consumer
 * crash fails every wait at once rather than at the deadline. */
class Seen {
  constructor(timeoutS) { this.items = []; this.waiters = []; this.timeoutS = timeoutS; this.error = null; }
  add(item) {
    this.items.push(item);
    for (const waiter of this.waiters.filter((w) => w.match(item))) waiter.settle(null, item);
  }
  fail(error) {
    this.error = error;
    for (const waiter of [...this.waiters]) waiter.settle(error);
  }
  wait(what, match, deadline) {
    const found = this.items.find(match);
    if (found) return Promise.resolve(found);
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      const waiter = {match, settle: (error, item) => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
        if (error) reject(error); else resolve(item);
      }};
      const timer = setTimeout(() => waiter.settle(new Timeout(
        `timed out after ${this.timeoutS} s waiting for ${what}`)), Math.max(0, deadline - Date.now()));
      this.waiters.push(waiter);
    });
  }
}

async function main() {
  const opts = options(process.argv.slice(2));
  const started = Date.now();
  const deadline = started + Number(opts.timeout) * 1000;
  const bus = contract.loadContract(opts.schemas);
  const type = (name) => bus.records[`fr.cepbus.${name}`];
  const encode = opts.framing === 'confluent' ? contract.encodeConfluent : contract.encodeSingleObject;
  const {operator, partner, person} = opts;
  const signers = {operator: opts['operator-seed'], partner: opts['partner-seed']};
  const directory = opts.directory;

  const kafka = new Kafka({
    clientId: `cepbus-node-client-${partner}`,
    brokers: opts.bootstrap.split(','),
    logLevel: logLevel.WARN,
    retry: {retries: 10, initialRetryTime: 200},
  });
  // Java-compatible murmur2 on the key: a person's events land where any other client puts them
  const producer = kafka.producer({createPartitioner: Partitioners.DefaultPartitioner, maxInFlightRequests: 1});
  const seen = new Seen(Number(opts.timeout));
  const unverified = [];  // messages of our person whose statement signature did not hold
  const consumers = [];
  // the operator reads its notices, the partner its inbox and its refusals; each in a group of its
  // organisation's prefix (cepbus/contract/wiring.py), fresh, from the beginning, filtering on the person
  const roles = [
    {group: `cepbus-operator-${operator}-node-`, topics: [TOPICS.noticeInbox(operator)]},
    {group: `cepbus-partner-${partner}-node-`, topics: [TOPICS.inbox(partner), TOPICS.rejected(partner)]},
  ];
  // Sends these events of one author as one batch: each framed as --framing says, all signed with one
  // statement signature over their single-object bytes (a Confluent frame's statement is its body
  // re-framed as single-object), each message carrying its own header (its index and path).
  const send = async (topic, name, values, signer) => {
    const frames = values.map((value) => encode(type(name), value));
    const signed = contract.signStatements(signer, frames.map((bytes) => contract.statementOf(bus, bytes)));
    await producer.send({
      topic,
      acks: -1,  // all in-sync replicas, as the Python SDKs send
      messages: values.map((value, i) => ({key: value.envelope.person_pseudonym, value: frames[i], headers: {
        [CORRELATION_HEADER]: value.envelope.correlation_id, [EVENT_TYPE_HEADER]: value.envelope.event_type,
        [TRACEPARENT_HEADER]: traceparent(), [contract.SIGNATURE_HEADER]: signed[i].header,
      }})),
    });
    return values.map((value, i) => ({
      event_id: value.envelope.event_id, framing: opts.framing, value_hex: frames[i].toString('hex'),
      signature_header: signed[i].header,
    }));
  };
  const start = async (role) => {
    const consumer = kafka.consumer({
      groupId: role.group + crypto.randomBytes(4).toString('hex'),
      // Tansu answers a JoinGroup after half the session timeout: keep it at Kafka's minimum (6 s);
      // frequent heartbeats, short fetch waits
      sessionTimeout: 6000,
      heartbeatInterval: 500,
      maxWaitTimeInMs: 100,
    });
    consumers.push(consumer);
    // kafkajs restarts a consumer after a retriable error by itself; anything else ends every wait
    consumer.on(consumer.events.CRASH, ({payload}) => payload.restart || seen.fail(payload.error));
    await consumer.connect();
    await consumer.subscribe({topics: role.topics, fromBeginning: true});
    await consumer.run({eachMessage: async ({topic, message}) => {
      let decoded;
      try {
        decoded = bus.decode(message.value);
      } catch (err) {
        if (err instanceof contract.DecodeError) return;  // not ours to judge; the bus dead-letters
        throw err;
      }
      if (decoded.value.envelope.person_pseudonym !== person) return;
      const header = (name) => message.headers[name] && message.headers[name].toString();
      let author;
      try {  // who said it: its author's directory key (valid now), over the message's own bytes; the
        // author must be the event's producer (the router passes events on with their author's signature)
        author = contract.verifyAuthor(contract.statementOf(bus, message.value),
          message.headers[contract.SIGNATURE_HEADER], directory, decoded.value.envelope.producer_org_id);
      } catch (err) {
        if (!(err instanceof contract.StatementError)) throw err;
        unverified.push({
          topic, offset: message.offset, name: decoded.type.name, event_id: decoded.value.envelope.event_id,
          reason: err.reason,
        });
        return;  // never acted on
      }
      const statement = contract.parseStatementHeader(message.headers[contract.SIGNATURE_HEADER]);
      seen.add({
        topic, framing: decoded.framing, name: decoded.type.name, value: decoded.value,
        frame_header_hex: message.value.subarray(0, 10).toString('hex'),  // enough for either framing
        headers_ok: header(EVENT_TYPE_HEADER) === decoded.type.name &&
          header(CORRELATION_HEADER) === decoded.value.envelope.correlation_id,
        traceparent: header(TRACEPARENT_HEADER) || null,
        signature: {signer: author.orgId, key_id: author.keyId, n: statement.size, i: statement.index},
      });
    }});
  };
  // fresh groups read from the beginning: the joins (a few seconds) overlap with the first publish
  const joined = Promise.all(roles.map(start)).catch((err) => seen.fail(err));
  try {
    await producer.connect();

    // 1. the operator: an intake whose person must be told about the partner's kind of operator
    const intake = {
      envelope: envelope('fr.cepbus.IntakeRegistered', operator, {person}),
      operator_id: operator,
      operator_kind: 'regional_cep',
      region_code: opts.region,
      departement_code: opts.departement,
      reception_site: 'Accueil (client Node.js)',
      channel: 'in_person',
      // what makes the partner's kind one the person must be told about (docs/domain.md): a cadre
      // for Apec, a disabled person (boeth) for Cap emploi; any other kind: no notice is due
      profile: {
        employment_status: 'private_employee', cadre: opts['partner-kind'] === 'apec',
        young_graduate: false, boeth: opts['partner-kind'] === 'cap_emploi', birth_year: 1980, job_seeker: false,
      },
      // purpose and cep_requested_on are left out: they take their defaults (null)
    };
    const [intakeSent] = await send(TOPICS.intake, 'IntakeRegistered', [intake], signers.operator);
    const intakeId = intake.envelope.event_id;
    const isNotice = (name) => (m) => m.name === `fr.cepbus.${name}` && m.value.intake_event_id === intakeId;
    const issued = await seen.wait('the NoticeIssued of the intake', isNotice('NoticeIssued'), deadline);
    const notice = issued.value;

    // the person chose, after the notice, to switch to the partner's kind of operator
    const choice = {
      envelope: envelope('fr.cepbus.ChoiceRecorded', operator, {cause: intake.envelope}),
      intake_event_id: intakeId,
      operator_id: operator,
      region_code: opts.region,
      choice: 'switch',
      chosen_operator_kind: opts['partner-kind'],
      consent_to_share: true,
    };
    const [choiceSent] = await send(TOPICS.choice, 'ChoiceRecorded', [choice], signers.operator);

    // 2. the partner: the referral in its inbox, then its answers
    const inbox = await seen.wait(`the referral in ${TOPICS.inbox(partner)}`,
      (m) => m.name === 'fr.cepbus.ReferralRequested' && m.value.envelope.causation_id === choice.envelope.event_id,
      deadline);
    const referral = inbox.value;
    // signer_org_id and signature are left out: they take their defaults (null); the statement
    // signature in the header is what proves the partner said it
    const update = (status, reasonCode = null) => ({
      envelope: envelope('fr.cepbus.ReferralStatusChanged', partner, {cause: referral.envelope}),
      referral_id: referral.referral_id,
      status,
      actor_org_id: partner,
      reason_code: reasonCode,
      note: null,
    });
    // one batch of two, one signature: one key, one partition, applied in this order
    const statuses = ['received', 'accepted'];
    const updates = (await send(TOPICS.status, 'ReferralStatusChanged', statuses.map((s) => update(s)), signers.partner))
      .map((sent, i) => Object.assign({status: statuses[i]}, sent));
    const illegal = update('completed', 'accompaniment_engaged');  // not a step from accepted
    const [illegalSent] = (await send(TOPICS.status, 'ReferralStatusChanged', [illegal], signers.partner))
      .map((sent) => Object.assign({status: 'completed'}, sent));
    const refusal = await seen.wait(`the refusal of the illegal step in ${TOPICS.rejected(partner)}`,
      (m) => m.name === 'fr.cepbus.ReferralUpdateRejected' && m.value.rejected_event_id === illegal.envelope.event_id,
      deadline);

    // 3. the operator: a referral to a local partner, with the person's consent and their contact
    // sealed to the partner's newest valid encryption key (chosen at start, from the verified directory)
    let contactReferral = null;
    if (opts.contact) {
      const {recipient, key, plaintext} = opts.contact;
      const referralId = crypto.randomUUID();
      const made = {
        envelope: envelope('fr.cepbus.ReferralRequested', operator, {person}),
        referral_id: referralId,
        requester_org_id: operator,
        recipient_org_id: recipient.orgId,
        recipient_kind: recipient.kind,
        region_code: opts.region,
        reason: 'Projet de transition professionnelle : mise en relation (client Node.js)',
        consent_to_share: true,
        shared_profile: null,
        sealed_contact: await sealedContact.sealContact(plaintext, key, {
          referral_id: referralId, requester_org_id: operator, recipient_org_id: recipient.orgId,
        }),
      };
      const [sent] = await send(TOPICS.requested, 'ReferralRequested', [made], signers.operator);
      contactReferral = {
        ...sent, referral_id: referralId, recipient: recipient.orgId, recipient_kind: recipient.kind,
        key_id: key.keyId, ciphertext_sha256: made.sealed_contact.ciphertext_sha256.toString('hex'),
      };
    }

    // how each message came: its topic, framing (and the frame's first bytes), headers as documented
    const how = ({topic, framing, frame_header_hex, headers_ok, traceparent, signature}) =>
      ({topic, framing, frame_header_hex, headers_ok, traceparent, signature});
    const textSha = crypto.createHash('sha256').update(notice.text, 'utf8').digest('hex');
    process.stdout.write(JSON.stringify({
      ok: true,
      person, operator, partner,
      trace_id: TRACE_ID,
      intake: intakeSent,
      choice: choiceSent,
      notice: {
        ...how(issued), event_id: notice.envelope.event_id,
        producer_org_id: notice.envelope.producer_org_id, person_pseudonym: notice.envelope.person_pseudonym,
        correlation_id: notice.envelope.correlation_id, notice_request_id: notice.notice_request_id,
        intake_event_id: notice.intake_event_id, operator_id: notice.operator_id, region_code: notice.region_code,
        channel: notice.channel, inform: notice.inform, language: notice.language, obligation: notice.obligation,
        text_sha256: notice.text_sha256, text_sha256_ok: textSha === notice.text_sha256,
        text_excerpt: notice.text.slice(0, 120),
      },
      referral: {
        ...how(inbox), referral_id: referral.referral_id, event_id: referral.envelope.event_id,
        producer_org_id: referral.envelope.producer_org_id, causation_id: referral.envelope.causation_id,
        correlation_id: referral.envelope.correlation_id,
        requester_org_id: referral.requester_org_id, recipient_org_id: referral.recipient_org_id,
        recipient_kind: referral.recipient_kind, region_code: referral.region_code,
        consent_to_share: referral.consent_to_share, shared_profile: referral.shared_profile,
      },
      updates,
      illegal_update: illegalSent,
      // everything of our person it read and believed, each with who signed it (its producer)
      verified: seen.items.map((m) => ({
        topic: m.topic, name: m.name, event_id: m.value.envelope.event_id,
        producer_org_id: m.value.envelope.producer_org_id, signer: m.signature.signer, key_id: m.signature.key_id,
      })),
      unverified,
      refusal: {
        ...how(refusal), event_id: refusal.value.envelope.event_id,
        producer_org_id: refusal.value.envelope.producer_org_id,
        rejected_event_id: refusal.value.rejected_event_id, reason_code: refusal.value.reason_code,
        attempted_status: refusal.value.attempted_status, current_status: refusal.value.current_status,
        detail: refusal.value.detail,
      },
      // step 3's referral (null without --contact): the box's key and digest, never the contact
      contact_referral: contactReferral,
      elapsed_ms: Date.now() - started,
    }) + '\n');
  } finally {
    await joined;
    await Promise.allSettled([producer.disconnect(), ...consumers.map((c) => c.disconnect())]);
  }
}

main().then(() => process.exit(0), (err) => {
  // said plainly; anything else with its stack
  const known = err instanceof Timeout || err instanceof Usage || err instanceof Refused;
  process.stderr.write(`cepbus node client: ${known ? err.message : err.stack || err}\n`);
  if (err instanceof Usage) process.stderr.write(USAGE);
  process.exit(err instanceof Timeout ? 2 : 1);
});
