// A non-Python client of the bus, written from schemas/avro/ and the docs alone (kafkajs + avsc):
// an operator's information system and a partner's, in one program.
//
//   1. as the operator (a regional CEP operator): publish an IntakeRegistered for a person who must be
//      told about a specialised operator, read the informed-choice notice the bus issues for them
//      (NoticeIssued by the notifier: the text the person receives) on its own notice inbox, the only
//      notices its KafkaUser may read, then publish the person's ChoiceRecorded: switch to that operator;
//   2. as the partner (the chosen operator): read the ReferralRequested the router puts in its inbox,
//      answer with signed ReferralStatusChanged updates (received, then accepted: the first steps
//      docs/referrals.md allows from `requested`), then a step the lifecycle does not allow
//      (completed while accepted), and read the router's refusal on its rejection topic, which also
//      tells the state the two first updates left the referral in;
//   3. print one JSON line of what it saw and sent; exit 0. Exit 2 on timeout, 1 on any other error.
//
// Options: USAGE below; each may also come from the environment (--partner-seed from
// CEPBUS_NODE_PARTNER_SEED, ..., --bootstrap from CEPBUS_BOOTSTRAP_SERVERS too). --framing is the
// framing this client SENDS; it reads both. The seed is the partner's raw Ed25519 private key, hex.
'use strict';

const crypto = require('crypto');
const path = require('path');
const {Kafka, Partitioners, logLevel} = require('kafkajs');
const contract = require('./lib/contract');

const TOPICS = {
  intake: 'cep.intake.registered',
  noticeInbox: (org) => `cep.notice.inbox.${org}`,
  choice: 'cep.choice.recorded',
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

const USAGE = `usage: node client.js --bootstrap HOST:PORT[,...] --operator ORG --partner ORG
  --partner-seed HEX64 --person PSEUDONYM [--schemas DIR] [--partner-kind apec] [--region 84]
  [--departement 69] [--framing single-object|confluent] [--timeout 60]
`;

class Timeout extends Error {}
class Usage extends Error {}

function options(argv) {
  const defaults = {
    bootstrap: process.env.CEPBUS_BOOTSTRAP_SERVERS,
    schemas: path.resolve(__dirname, '..', '..', 'schemas', 'avro'),
    'partner-kind': 'apec', region: '84', departement: '69', framing: 'single-object', timeout: '60',
  };
  const opts = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) throw new Usage(`bad argument ${argv[i]}`);
    opts[argv[i].slice(2)] = argv[i + 1];
  }
  for (const name of ['bootstrap', 'schemas', 'operator', 'partner', 'partner-seed', 'person',
    'partner-kind', 'region', 'departement', 'framing', 'timeout']) {
    const env = process.env[`CEPBUS_NODE_${name.toUpperCase().replace(/-/g, '_')}`];
    opts[name] = opts[name] ?? env ?? defaults[name];
    if (opts[name] === undefined) throw new Usage(`missing --${name}`);
  }
  if (!['single-object', 'confluent'].includes(opts.framing)) throw new Usage(`unknown framing ${opts.framing}`);
  try {
    contract.ed25519PrivateKey(opts['partner-seed']);  // a bad seed fails here, before anything is sent
  } catch (err) {
    throw new Usage(`--partner-seed: ${err.message}`);
  }
  return opts;
}

/** An envelope as docs/contract.md describes it: event_type is the payload's full name, occurred_at
 * milliseconds since the epoch, the person pseudonym set (it is the partition key); a derived event
 * inherits correlation and person from its cause and names it in causation_id. */
function envelope(eventType, producer, {person, cause} = {}) {
  const eventId = crypto.randomUUID();  // lowercase, hyphenated: the form the signature covers
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

  const kafka = new Kafka({
    clientId: `cepbus-node-client-${partner}`,
    brokers: opts.bootstrap.split(','),
    logLevel: logLevel.WARN,
    retry: {retries: 10, initialRetryTime: 200},
  });
  // Java-compatible murmur2 on the key: a person's events land where any other client puts them
  const producer = kafka.producer({createPartitioner: Partitioners.DefaultPartitioner, maxInFlightRequests: 1});
  const seen = new Seen(Number(opts.timeout));
  const consumers = [];
  // the operator reads its notices, the partner its inbox and its refusals; each in a group of its
  // organisation's prefix (cepbus/contract/wiring.py), fresh, from the beginning, filtering on the person
  const roles = [
    {group: `cepbus-operator-${operator}-node-`, topics: [TOPICS.noticeInbox(operator)]},
    {group: `cepbus-partner-${partner}-node-`, topics: [TOPICS.inbox(partner), TOPICS.rejected(partner)]},
  ];
  const send = async (topic, name, value) => {
    const bytes = encode(type(name), value);
    const e = value.envelope;
    await producer.send({
      topic,
      acks: -1,  // all in-sync replicas, as the Python SDKs send
      messages: [{key: e.person_pseudonym, value: bytes, headers: {
        [CORRELATION_HEADER]: e.correlation_id, [EVENT_TYPE_HEADER]: e.event_type,
        [TRACEPARENT_HEADER]: traceparent(),
      }}],
    });
    return {event_id: e.event_id, framing: opts.framing, value_hex: bytes.toString('hex')};
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
      seen.add({
        topic, framing: decoded.framing, name: decoded.type.name, value: decoded.value,
        frame_header_hex: message.value.subarray(0, 10).toString('hex'),  // enough for either framing
        headers_ok: header(EVENT_TYPE_HEADER) === decoded.type.name &&
          header(CORRELATION_HEADER) === decoded.value.envelope.correlation_id,
        traceparent: header(TRACEPARENT_HEADER) || null,
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
    const intakeSent = await send(TOPICS.intake, 'IntakeRegistered', intake);
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
    const choiceSent = await send(TOPICS.choice, 'ChoiceRecorded', choice);

    // 2. the partner: the referral in its inbox, then its signed answers
    const inbox = await seen.wait(`the referral in ${TOPICS.inbox(partner)}`,
      (m) => m.name === 'fr.cepbus.ReferralRequested' && m.value.envelope.causation_id === choice.envelope.event_id,
      deadline);
    const referral = inbox.value;
    const update = (status, reasonCode = null) => contract.signStatus({
      envelope: envelope('fr.cepbus.ReferralStatusChanged', partner, {cause: referral.envelope}),
      referral_id: referral.referral_id,
      status,
      actor_org_id: partner,
      reason_code: reasonCode,
      note: null,
    }, partner, opts['partner-seed']);
    const updates = [];
    for (const status of ['received', 'accepted']) {  // one key, one partition: applied in this order
      updates.push(Object.assign({status}, await send(TOPICS.status, 'ReferralStatusChanged', update(status))));
    }
    const illegal = update('completed', 'accompaniment_engaged');  // not a step from accepted
    const illegalSent = Object.assign({status: 'completed'},
      await send(TOPICS.status, 'ReferralStatusChanged', illegal));
    const refusal = await seen.wait(`the refusal of the illegal step in ${TOPICS.rejected(partner)}`,
      (m) => m.name === 'fr.cepbus.ReferralUpdateRejected' && m.value.rejected_event_id === illegal.envelope.event_id,
      deadline);

    // how each message came: its topic, framing (and the frame's first bytes), headers as documented
    const how = ({topic, framing, frame_header_hex, headers_ok, traceparent}) =>
      ({topic, framing, frame_header_hex, headers_ok, traceparent});
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
        causation_id: referral.envelope.causation_id,
        correlation_id: referral.envelope.correlation_id,
        requester_org_id: referral.requester_org_id, recipient_org_id: referral.recipient_org_id,
        recipient_kind: referral.recipient_kind, region_code: referral.region_code,
        consent_to_share: referral.consent_to_share, shared_profile: referral.shared_profile,
      },
      updates,
      illegal_update: illegalSent,
      refusal: {
        ...how(refusal), event_id: refusal.value.envelope.event_id,
        rejected_event_id: refusal.value.rejected_event_id, reason_code: refusal.value.reason_code,
        attempted_status: refusal.value.attempted_status, current_status: refusal.value.current_status,
        detail: refusal.value.detail,
      },
      elapsed_ms: Date.now() - started,
    }) + '\n');
  } finally {
    await joined;
    await Promise.allSettled([producer.disconnect(), ...consumers.map((c) => c.disconnect())]);
  }
}

main().then(() => process.exit(0), (err) => {
  const known = err instanceof Timeout || err instanceof Usage;  // said plainly; anything else with its stack
  process.stderr.write(`cepbus node client: ${known ? err.message : err.stack || err}\n`);
  if (err instanceof Usage) process.stderr.write(USAGE);
  process.exit(err instanceof Timeout ? 2 : 1);
});
