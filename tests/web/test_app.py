"""The web stub: health and the latest checkpoint."""

from __future__ import annotations

from web.app import create_app
from web.context import AppContext


def test_healthz_and_index(instance: AppContext) -> None:
    client = create_app(instance).test_client()
    res = client.get("/healthz")
    assert res.status_code == 200 and res.get_json() == {"status": "ok", "log_size": 0}
    page = client.get("/").get_data(as_text=True)
    assert "尚无检查点" in page
    instance.ledger.append("note", {"text": "x"}, "system")
    res = client.get("/healthz")
    assert res.get_json()["log_size"] == 1
    page = client.get("/").get_data(as_text=True)
    cp = instance.ledger.latest_checkpoint()
    assert cp is not None
    assert cp.note.decode().split("\n")[2] in page  # the root line of the signed note
    assert instance.ledger.signer.vkey() in page


def test_job_progress_can_be_polled_with_a_token(instance: AppContext) -> None:
    from core.accounts import AccountService
    from core.db import transaction

    with transaction(instance.engine) as s:
        svc = AccountService(s)
        svc.add("li", "legal", "password-1")
        token = svc.issue_token("li")
    job, _ = instance.jobs.submit(
        "bundle_export", {"out": "x.zip", "case": "C-1"}, key="poll-test", actor="li", send=False
    )
    client = create_app(instance).test_client()
    assert client.get(f"/api/jobs/{job.id}").status_code == 401
    bad = client.get(f"/api/jobs/{job.id}", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.content_type == "application/problem+json"
    res = client.get(f"/api/jobs/{job.id}", headers={"Authorization": f"Bearer {token}"})
    assert res.status_code == 200
    body = res.get_json()
    assert body["id"] == job.id and body["state"] == "queued"
    missing = client.get("/api/jobs/999999", headers={"Authorization": f"Bearer {token}"})
    assert missing.status_code == 404
