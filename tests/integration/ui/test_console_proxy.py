"""Whose address the sign-in throttle counts: the connecting peer, unless that peer is a
proxy named in ``FORWARDED_ALLOW_IPS`` (then the address it forwards)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest

from tests.conftest import make_settings
from tests.integration.ui.conftest import API_KEY, SECRET, csrf_of
from voicebot.app import create_app

FAILURES_PER_MINUTE = 3
PROXY = "10.0.0.2"
OPERATOR_A = "203.0.113.10"
OPERATOR_B = "198.51.100.20"

Clients = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def clients(database_url: str) -> Callable[[str | None], Clients]:
    """``clients(forwarded_allow_ips)`` → ``client(peer)``: browsers of one running app,
    each connecting from ``peer`` (the address the server sees on the socket)."""

    def for_app(forwarded_allow_ips: str | None) -> Clients:
        settings = make_settings(
            database_url=database_url,
            api_key=API_KEY,
            secret_key=SECRET,
            auth_failures_per_minute=FAILURES_PER_MINUTE,
            forwarded_allow_ips=forwarded_allow_ips,
        )
        app = create_app(settings)

        @asynccontextmanager
        async def client(peer: str) -> AsyncIterator[httpx.AsyncClient]:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app, client=(peer, 40000))
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                    yield http

        return client

    return for_app


async def _wrong_key(http: httpx.AsyncClient, forwarded_for: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    form = await http.get("/ui/sign-in", headers=headers)
    response = await http.post(
        "/ui/sign-in",
        data={"api_key": "wrong", "csrf_token": csrf_of(form.text), "next": ""},
        headers=headers,
    )
    return response.status_code


async def test_behind_a_trusted_proxy_each_operator_has_own_throttle(
    clients: Callable[[str | None], Clients],
) -> None:
    """With the proxy trusted, one operator's failed sign-ins do not lock out another who
    comes through the same proxy."""
    client = clients(PROXY)
    async with client(PROXY) as http:
        codes = [await _wrong_key(http, OPERATOR_A) for _ in range(FAILURES_PER_MINUTE + 1)]
        assert codes == [401] * FAILURES_PER_MINUTE + [429]
        assert await _wrong_key(http, OPERATOR_B) == 401


async def test_without_a_trusted_proxy_forwarded_for_is_ignored(
    clients: Callable[[str | None], Clients],
) -> None:
    """Unset ``FORWARDED_ALLOW_IPS``: a client cannot dodge the throttle by inventing a new
    X-Forwarded-For on every try; the connecting address is what counts."""
    client = clients(None)
    async with client(OPERATOR_A) as http:
        codes = [
            await _wrong_key(http, f"192.0.2.{attempt}")
            for attempt in range(FAILURES_PER_MINUTE + 1)
        ]
        assert codes == [401] * FAILURES_PER_MINUTE + [429]


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    clients: Callable[[str | None], Clients],
) -> None:
    """A proxy is trusted only by its own address: a direct client sending X-Forwarded-For
    is still throttled as itself."""
    client = clients(PROXY)
    async with client(OPERATOR_A) as http:
        codes = [
            await _wrong_key(http, f"192.0.2.{attempt}")
            for attempt in range(FAILURES_PER_MINUTE + 1)
        ]
        assert codes == [401] * FAILURES_PER_MINUTE + [429]
