"""Trust material and the two modes of the bus.

`CEPBUS_ENV=development` (the default of the embedded broker, `up`, `demo` and the tests) allows the
example directory, derivable keys and generated ledger keys, and says so loudly in the logs;
`CEPBUS_ENV=production` refuses to start with any of them (`modes.require_production_trust`).
Development material lives in `development.py`, and nowhere else.
"""
