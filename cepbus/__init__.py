"""cep-bus's shared package: what every process of the bus needs, and nothing of any service.

- `cepbus.contract`: schemas, codec, models, topic catalog, headers, signatures, evolution gate;
- `cepbus.reference`: regions, départements, operators, the referral directory;
- `cepbus.runtime`: message processing, the stream driver, settings, logs, metrics, health, SQL;
- `cepbus.sdk`: the publishing and partner SDKs.

It imports nothing from `services/` or `cepbus_app/` (tests/unit/test_architecture.py).
"""
