"""The partner inbox: a small web application where a partner organisation's staff see its open
referrals with their deadlines and record each step, every step signed in the browser with the
organisation's own key (WebCrypto Ed25519; the key never reaches this server). It talks to the bus like
any partner's information system: the router's read side over HTTP with the organisation's bearer
token, signed `ReferralStatusChanged` published with the SDK's `Publisher`. See docs/inbox.md."""
