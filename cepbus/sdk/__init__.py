"""The SDKs for operator and partner information systems: `publisher.Publisher` (validate and publish
events) and `partner` (read a referral inbox, send signed status updates). They load no stream
framework and no service code (a test checks `sys.modules`)."""
