"""Leads over HTTP, on SQLite and Postgres."""

from __future__ import annotations

import httpx


async def test_lead_crud_round_trip(client: httpx.AsyncClient) -> None:
    """A lead is created with an E.164 phone, listed, updated and deleted."""
    created = await client.post(
        "/api/v1/leads", json={"phone": "054-4567890", "name": "דנה כהן", "tags": ["חם"]}
    )
    assert created.status_code == 201, created.text
    lead = created.json()
    assert lead["phone"] == "+972544567890"
    assert lead["status"] == "new"

    listed = await client.get("/api/v1/leads", params={"tag": "חם"})
    assert [item["id"] for item in listed.json()["items"]] == [lead["id"]]

    patched = await client.patch(f"/api/v1/leads/{lead['id']}", json={"company": 'אקמה בע"מ'})
    assert patched.status_code == 200
    assert patched.json()["company"] == 'אקמה בע"מ'

    assert (await client.delete(f"/api/v1/leads/{lead['id']}")).status_code == 204
    assert (await client.get(f"/api/v1/leads/{lead['id']}")).status_code == 404


async def test_invalid_phone_is_422_naming_the_field(client: httpx.AsyncClient) -> None:
    """A phone of 'abc' is refused with 422 and a field-level error on `phone`."""
    response = await client.post("/api/v1/leads", json={"phone": "abc"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"]["code"] == "validation_error"
    assert [d["field"] for d in body["error"]["details"]] == ["phone"]


async def test_a_letter_inside_a_phone_is_422(client: httpx.AsyncClient) -> None:
    """'054x4567870' is a typo, not a vanity number: phonenumbers would read the 'x' (and
    '+972-54-FLOWERS' as digits, 'x12' as an extension); any letter is refused, saying so."""
    for phone in ("054x4567870", "0544567870x12", "+972-54-FLOWERS", "054-4567870 א"):
        response = await client.post("/api/v1/leads", json={"phone": phone})
        assert response.status_code == 422, (phone, response.text)
        [detail] = response.json()["error"]["details"]
        assert detail["field"] == "phone"
        assert "letters" in detail["message"], detail
    response = await client.post("/api/v1/do-not-call", json={"phone": "054x4567870"})
    assert response.status_code == 422, response.text


async def test_duplicate_phone_is_409(client: httpx.AsyncClient) -> None:
    """Two leads with the same number in different forms conflict."""
    assert (await client.post("/api/v1/leads", json={"phone": "052-5551234"})).status_code == 201
    again = await client.post("/api/v1/leads", json={"phone": "+972525551234"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    """A body that is not JSON gets the common error shape, not a 500."""
    response = await client.post(
        "/api/v1/leads", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "body"


async def test_pagination_and_status_filter(client: httpx.AsyncClient) -> None:
    """limit/offset page through leads; an unknown status filter is 422."""
    for i in range(5):
        r = await client.post("/api/v1/leads", json={"phone": f"052-555123{i}"})
        assert r.status_code == 201
    page = (await client.get("/api/v1/leads", params={"limit": 2, "offset": 2})).json()
    assert page["total"] == 5
    assert [item["phone"][-1] for item in page["items"]] == ["2", "3"]
    assert (await client.get("/api/v1/leads", params={"status": "bogus"})).status_code == 422


async def test_csv_import_reports_row_errors(client: httpx.AsyncClient) -> None:
    """Good rows are imported; bad and duplicate rows are reported by line, never half-imported."""
    csv_text = (
        "phone,name,company,email,tags\n"
        "054-4567890,משה לוי,אלפא,moshe@example.com,חם;צפון\n"
        "abc,שגוי,,,\n"
        "0544567890,כפול,,,\n"
        "03-5551234,רונית,,not-an-email,\n"
        "052-5551234,יוסי,,,\n"
    )
    response = await client.post(
        "/api/v1/leads/import", content=csv_text.encode(), headers={"content-type": "text/csv"}
    )
    assert response.status_code == 200
    report = response.json()
    assert report["created"] == 2
    assert [e["row"] for e in report["errors"]] == [3, 4, 5]
    phones = {item["phone"] for item in (await client.get("/api/v1/leads")).json()["items"]}
    assert phones == {"+972544567890", "+972525551234"}
