"""A hostile client against the console: frames, caches, out-of-range filters and ids."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from tests.integration.ui.conftest import csrf_of, seed_call, sign_in

pytestmark = pytest.mark.asyncio


async def test_every_page_refuses_frames_and_caches(
    operator: httpx.AsyncClient, keyed_app: Starlette
) -> None:
    ids = await seed_call(keyed_app)
    for path in ("/ui/", "/ui/calls", f"/ui/calls/{ids['call_id']}", "/ui/leads", "/ui/sign-in"):
        response = await operator.get(path)
        assert response.status_code == 200, path
        assert response.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], path
        assert response.headers["cache-control"] == "no-store", path
        assert response.headers["x-content-type-options"] == "nosniff", path


async def test_redirects_and_refusals_carry_the_headers_too(
    anonymous: httpx.AsyncClient,
) -> None:
    redirect = await anonymous.get("/ui/calls")
    assert redirect.status_code == 303
    assert redirect.headers["x-frame-options"] == "DENY"
    refused = await anonymous.post("/ui/sign-in", data={"api_key": "x"})
    assert refused.status_code == 403
    assert refused.headers["cache-control"] == "no-store"


async def test_static_files_stay_cacheable_but_unframeable(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/ui/static/console.css")
    assert response.status_code == 200
    assert response.headers.get("cache-control") != "no-store"
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    "query",
    ["date=9999-12-31", "date=0001-01-01", "date=garbage", "date=2026-02-30", "campaign=abc",
     "lead=-1", "offset=-5", "offset=99999999999999", "outcome=<script>"],
)  # fmt: skip
async def test_calls_filters_out_of_range_are_ignored(
    operator: httpx.AsyncClient, query: str
) -> None:
    response = await operator.get("/ui/calls?" + query)
    assert response.status_code == 200, response.text[:300]


@pytest.mark.parametrize("week", ["9999-12-31", "0001-01-01", "garbage", "-1"])
async def test_meetings_week_out_of_range_is_this_week(
    operator: httpx.AsyncClient, week: str
) -> None:
    response = await operator.get("/ui/meetings?week=" + week)
    assert response.status_code == 200, response.text[:300]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/ui/calls/99999999999999999999"), ("GET", "/ui/leads/99999999999999999999"),
     ("GET", "/ui/campaigns/99999999999999999999"), ("GET", "/ui/campaigns/2147483648/progress"),
     ("GET", "/ui/calls/99999999999999999999/recording")],
)  # fmt: skip
async def test_ids_too_long_for_the_database_are_not_found(
    operator: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await operator.request(method, path)
    assert response.status_code == 404, response.text[:300]


async def test_a_cookie_copied_before_sign_out_is_refused_after_it(
    operator: httpx.AsyncClient,
) -> None:
    copied = operator.cookies.get("voicebot_console")
    assert copied
    token = csrf_of((await operator.get("/ui/calls")).text)
    signed_out = await operator.post("/ui/sign-out", data={"csrf_token": token})
    assert signed_out.status_code == 303
    operator.cookies.clear()
    operator.cookies.set("voicebot_console", copied, path="/ui")
    replay = await operator.get("/ui/calls")
    assert replay.status_code == 303
    assert replay.headers["location"].startswith("/ui/sign-in")


async def test_signing_in_again_after_sign_out_works(operator: httpx.AsyncClient) -> None:
    token = csrf_of((await operator.get("/ui/calls")).text)
    await operator.post("/ui/sign-out", data={"csrf_token": token})
    assert (await sign_in(operator)).status_code == 303
    assert (await operator.get("/ui/calls")).status_code == 200
