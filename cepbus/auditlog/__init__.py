"""The regulation log as an auditor uses it, importable without any stream runtime or service: what
`pip install 'cep-bus[audit]'` is for (`cep-bus-audit verify|report`).

- `leaf`: the leaf format (`fr.cepbus.LedgerRecord`: what one Merkle leaf holds, sealed and clear parts);
- `merkle`: the RFC 9162 tree, inclusion and consistency proofs; `note`: C2SP signed checkpoints;
- `reading`: what is read of a stored log (`LogReader`), whoever stores it;
- `bundle`: the export bundle format, its export from a `LogReader` and its offline verifier;
- `report`: the audit indicators computed from leaves (pure); `context`: the reference data it needs;
- `document`: the report as HTML and PDF/A (matplotlib, WeasyPrint, loaded only to render);
- `cli`: the auditor's command.

The ledger service (`services/ledger`) writes the log with these; the dependency runs one way (this
package imports nothing of `cepbus.runtime`, `cepbus.sdk` or `services`, which a test checks), as
Tessera keeps its log format and client apart from its storage and appender.
"""
