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
