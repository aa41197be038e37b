"""The console's gate: sign-in with the API key, redirects without a session, CSRF on
every form, sign-out; nothing of it is reachable without the key."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from tests.conftest import make_settings
from tests.integration.ui.conftest import API_KEY, csrf_of, seed_call, sign_in
from voicebot.app import create_app

PAGES = ["/ui/", "/ui/calls", "/ui/campaigns", "/ui/campaigns/new", "/ui/leads", "/ui/meetings"]


def console_routes(app: Starlette) -> list[tuple[str, str]]:
    """Every (method, path) the console serves, ids filled with 1."""
    mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == "/ui")
    router = mount.app
    while not hasattr(router, "routes"):
        router = router.app  # the session and guard middleware around the router
    found = []
    for route in router.routes:
        if isinstance(route, Route):
            path = route.path.replace("{campaign_id:int}", "1").replace("{call_id:int}", "1")
            path = path.replace("{lead_id:int}", "1").replace("{action}", "start")
            for method in sorted(route.methods or {"GET"}):
                if method != "HEAD":
                    found.append((method, "/ui" + path))
    return found


async def test_pages_without_session_redirect_to_sign_in(anonymous: httpx.AsyncClient) -> None:
    """Every page answers 303 to the sign-in page (with where to come back) without a session."""
    for path in PAGES:
        response = await anonymous.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/ui/sign-in"), path
    response = await anonymous.get("/ui/calls?outcome=no_answer")
    assert response.headers["location"] == "/ui/sign-in?next=%2Fui%2Fcalls%3Foutcome%3Dno_answer"


async def test_htmx_request_without_session_gets_hx_redirect(anonymous: httpx.AsyncClient) -> None:
    """A polling fragment whose session ended gets 401 with HX-Redirect, not a sign-in page
    swapped into the box."""
    response = await anonymous.get("/ui/live", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["hx-redirect"].startswith("/ui/sign-in")


async def test_nothing_reachable_without_the_key(
    keyed_app: Starlette, anonymous: httpx.AsyncClient
) -> None:
    """Each console route, by every method, refuses a client without a signed-in session,
    and a wrong key does not sign in; static assets are the only open files."""
    await seed_call(keyed_app)
    routes = console_routes(keyed_app)
    assert len(routes) >= 15
    for method, path in routes:
        if path.startswith("/ui/sign-in"):
            continue
        response = await anonymous.request(method, path)
        assert response.status_code in (303, 401), (method, path, response.status_code)
        assert "/ui/sign-in" in (
            response.headers.get("location", "") + response.headers.get("hx-redirect", "")
        )
        assert "דנה" not in response.text
    wrong = await sign_in(anonymous, key="not-the-key")
    assert wrong.status_code == 401
    assert "המפתח שגוי" in wrong.text
    assert (await anonymous.get("/ui/")).status_code == 303
    assert (await anonymous.get("/ui/static/htmx.min.js")).status_code == 200
    assert (await anonymous.get("/api/v1/calls")).status_code == 401


async def test_sign_in_then_sign_out(anonymous: httpx.AsyncClient) -> None:
    """The key signs in (HttpOnly, SameSite=strict cookie on /ui) and returns to the page
    asked for; sign-out ends the session."""
    form = await anonymous.get("/ui/sign-in?next=/ui/leads")
    response = await anonymous.post(
        "/ui/sign-in",
        data={"api_key": API_KEY, "csrf_token": csrf_of(form.text), "next": "/ui/leads"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/leads"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
    page = await anonymous.get("/ui/leads")
    assert page.status_code == 200
    assert 'dir="rtl"' in page.text
    out = await anonymous.post("/ui/sign-out", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 303
    assert (await anonymous.get("/ui/leads")).status_code == 303


async def test_sign_in_refuses_a_foreign_next(anonymous: httpx.AsyncClient) -> None:
    """After sign-in the console only sends the browser to its own pages."""
    form = await anonymous.get("/ui/sign-in")
    response = await anonymous.post(
        "/ui/sign-in",
        data={"api_key": API_KEY, "csrf_token": csrf_of(form.text), "next": "//evil.example/"},
    )
    assert response.headers["location"] == "/ui/"


async def test_forms_without_csrf_token_are_refused(
    keyed_app: Starlette, operator: httpx.AsyncClient
) -> None:
    """A signed-in POST without the session's CSRF token (or with another) is refused with
    403 and changes nothing; the same form with the token goes through."""
    seeded = await seed_call(keyed_app)
    page = await operator.get("/ui/campaigns/new")
    token = csrf_of(page.text)
    body = {"name": "קמפיין בלי טוקן", "window_start": "09:00", "window_end": "18:00"}
    refused = await operator.post("/ui/campaigns/new", data=body)
    assert refused.status_code == 403
    forged = await operator.post("/ui/campaigns/new", data={**body, "csrf_token": "x" * 43})
    assert forged.status_code == 403
    header_forged = await operator.post(
        f"/ui/leads/{seeded['lead_id']}/dnc", data={"dnc": "on"}, headers={"X-CSRF-Token": "no"}
    )
    assert header_forged.status_code == 403
    assert (await operator.post("/ui/sign-out")).status_code == 403
    names = (await operator.get("/ui/campaigns")).text
    assert "קמפיין בלי טוקן" not in names
    accepted = await operator.post("/ui/campaigns/new", data={**body, "csrf_token": token})
    assert accepted.status_code == 303, accepted.text
    assert "קמפיין בלי טוקן" in (await operator.get("/ui/campaigns")).text
    via_header = await operator.post(
        f"/ui/leads/{seeded['lead_id']}/dnc", data={"dnc": "on"}, headers={"X-CSRF-Token": token}
    )
    assert via_header.status_code == 303


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_open_console_when_no_key(database_url: str) -> None:
    """With no API key set (API_AUTH=none or a loopback dev server) the console needs no
    sign-in, but its forms still need the CSRF token."""
    settings = make_settings(database_url=database_url, api_key=None, api_auth="none")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            page = await http.get("/ui/")
            assert page.status_code == 200
            assert (await http.get("/ui/sign-in")).status_code == 303
            assert (await http.post("/ui/campaigns/new", data={"name": "x"})).status_code == 403
