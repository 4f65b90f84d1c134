"""The inbox's pages, one `APIRouter` per group, assembled by `services/inbox/app.py:build_app`:

    login.py        GET /, GET and POST /login, POST /logout
    referrals.py    GET /referrals, GET /referrals/{id}
    signing.py      POST /referrals/{id}/steps, GET and POST /referrals/{id}/sign/{event}
    key.py          GET /key
    export.py       GET /export, GET /export.csv
    operations.py   GET /healthz, /readyz, /metrics

What they share: `dependencies.py` (the inbox, the session, the form-token guard, as FastAPI
dependencies), `answers.py` (rendering a page, and answering early from inside a dependency or a
helper) and `reading.py` (the read side's answers for a page, its refusals and outages as pages).
"""
