"""The SDKs for operator and partner information systems: `publisher.Publisher` (validate and publish
events) and `partner` (read a referral inbox, send signed status updates). They load no stream
framework and no service code (a test checks `sys.modules`), and `pip install cep-bus` with no extra is
all they need (tests/integration/test_packaging.py; docs/installing.md).

Import from the two modules (`from cepbus.sdk.publisher import Publisher`); this package imports
neither, so that loading one SDK does not load the other."""

__all__ = ["partner", "publisher"]
