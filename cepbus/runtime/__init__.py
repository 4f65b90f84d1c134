"""What every service process runs on.

- The core, with no stream framework: message types (`messages`), decide (`processing`: decode, handle,
  dead-letter, the route and timer decisions), the service definition (`service`), the send side and
  the outbox relay (`sending`, `outbox`), route retries (`retry`), health, lag and silence
  (`operations`, `health`, `lag`, `silence`), the Kafka settings for each client (`settings`,
  `client_config`), framing (`framing`), SQL plumbing (`sqldb`, `vault`), topic creation (`admin`),
  logs and metrics, and the test instruments' protocols (`instruments`, `traffic`, `faults`).
- Two thin drivers over it: `batch_driver` (confluent-kafka, the default) and `faust_driver`
  (faust-streaming, `CEPBUS_RUNTIME=faust`); `runner` imports only the one chosen.

Import the module you need: this package imports nothing itself, so an SDK that reads
`cepbus.runtime.settings` loads neither a stream framework nor librdkafka.
"""
