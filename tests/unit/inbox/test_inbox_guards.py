"""The pages' guards are FastAPI dependencies (`services/inbox/pages/dependencies.py`): no session is
the log-in page, whatever the page or form; the security headers go on those answers too."""

from __future__ import annotations

from tests.unit.inbox.harness import PARTNER, Harness, form_token, log_in


def test_posts_without_a_session_go_to_the_login_before_any_endpoint_runs(harness: Harness) -> None:
    """The session and form-token guards are dependencies: they answer before the endpoint's own form
    fields are validated (an over-long note from nobody is sent to the log-in, not told what is wrong)."""
    request = harness.refer()
    inbox = harness.inbox()
    for path in (
        f"/referrals/{request.referral_id}/steps",
        f"/referrals/{request.referral_id}/sign/00000000-0000-4000-8000-000000000000",
        "/logout",
    ):
        answer = inbox.post(
            path, data={"status": "received", "note": "x" * 3000, "csrf": "x"}, follow_redirects=False
        )
        assert (answer.status_code, answer.headers["location"]) == (303, "/login")
        assert (
            answer.headers["cache-control"] == "no-store"
            and "default-src 'none'" in answer.headers["content-security-policy"]
        )
    assert harness.read_side.calls == [] and harness.publisher.published == []


def test_gets_without_a_session_go_to_the_login(harness: Harness) -> None:
    request = harness.refer()
    inbox = harness.inbox()
    for path in ("/referrals", f"/referrals/{request.referral_id}", "/key", "/referrals/r/sign/e"):
        answer = inbox.get(path, follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, "/login")
    assert inbox.get("/", follow_redirects=False).headers["location"] == "/login"
    log_in(inbox, PARTNER)
    assert inbox.get("/", follow_redirects=False).headers["location"] == "/referrals"
    assert inbox.get("/login", follow_redirects=False).headers["location"] == "/referrals"
    token = form_token(inbox.get("/referrals").text)
    assert inbox.post("/logout", data={"csrf": token}, follow_redirects=False).headers["location"] == "/login"
