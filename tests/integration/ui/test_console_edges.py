"""Edges of what the console gained on 29 Nov: the recording player behind a failing or
empty store, Range requests from the audio element, the record toggle on a running
campaign, and FORWARDED_ALLOW_IPS given in a form the proxy check cannot read."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from tests.conftest import make_settings
from tests.integration.ui.conftest import API_KEY, SECRET, csrf_of, seed_call, sign_in
from voicebot.app import create_app
from voicebot.db.models import Call, Campaign
from voicebot.errors import ConfigError


@asynccontextmanager
async def _operator(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        assert (await sign_in(http)).status_code == 303
        yield http


async def _mark_recorded(app: Starlette, call_id: int) -> None:
    async with app.state.voicebot.sessions() as session:
        call = await session.get(Call, call_id)
        assert call is not None
        call.recording_key = f"calls/{call_id}.wav"
        await session.commit()


async def test_recording_store_that_fails_answers_503_not_500(
    database_url: str, tmp_path: Path
) -> None:
    """RECORDING_DIR that is a file (a store that cannot be read): the player's URL and the
    API answer 503 storage_unavailable (was: NotADirectoryError escaped as a 500)."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"x")
    settings = make_settings(
        database_url=database_url, api_key=API_KEY, secret_key=SECRET,
        recording_dir=str(blocker),
    )  # fmt: skip
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        seeded = await seed_call(app)
        await _mark_recorded(app, seeded["call_id"])
        async with _operator(app) as http:
            ui = await http.get(f"/ui/calls/{seeded['call_id']}/recording")
            api = await http.get(
                f"/api/v1/calls/{seeded['call_id']}/recording",
                headers={"Authorization": "Bearer " + API_KEY},
            )
    assert ui.status_code == 503, ui.text
    assert api.status_code == 503, api.text


async def test_recording_missing_from_store_is_404_and_range_is_served(
    database_url: str, tmp_path: Path
) -> None:
    """A call whose key points at nothing answers 404; a stored one answers a browser's
    ``Range: bytes=`` seek with 206 and the asked bytes (audio/wav)."""
    settings = make_settings(
        database_url=database_url, api_key=API_KEY, secret_key=SECRET,
        recording_dir=str(tmp_path / "rec"),
    )  # fmt: skip
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        seeded = await seed_call(app)
        await _mark_recorded(app, seeded["call_id"])
        url = f"/ui/calls/{seeded['call_id']}/recording"
        async with _operator(app) as http:
            assert (await http.get(url)).status_code == 404
            wav = b"RIFF" + bytes(range(256)) * 8
            (tmp_path / "rec" / "calls").mkdir(parents=True)
            (tmp_path / "rec" / "calls" / f"{seeded['call_id']}.wav").write_bytes(wav)
            whole = await http.get(url)
            part = await http.get(url, headers={"Range": "bytes=100-199"})
            tail = await http.get(url, headers={"Range": "bytes=-10"})
            beyond = await http.get(url, headers={"Range": f"bytes={len(wav)}-"})
            garbage = await http.get(url, headers={"Range": "bytes=zz"})
    assert whole.status_code == 200 and whole.content == wav
    assert whole.headers["content-type"] == "audio/wav"
    assert whole.headers["accept-ranges"] == "bytes"
    assert part.status_code == 206, part.status_code
    assert part.content == wav[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(wav)}"
    assert tail.status_code == 206 and tail.content == wav[-10:]
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(wav)}"
    assert garbage.status_code == 200 and garbage.content == wav  # unreadable: ignored


async def test_record_toggle_on_running_campaign_says_pause_first_in_hebrew(
    keyed_app: Starlette, operator: httpx.AsyncClient
) -> None:
    """Ticking "record calls" on a running campaign is refused with 409 and a Hebrew
    sentence naming the field and saying to pause first (was: the API's English
    'cannot change while running' next to the raw field name)."""
    async with keyed_app.state.voicebot.sessions() as session:
        campaign = Campaign(
            name="מבצע אביב", status="running", agent_script={"company": "ליד פלוס"}
        )
        session.add(campaign)
        await session.commit()
        campaign_id = campaign.id
    url = f"/ui/campaigns/{campaign_id}"
    page = await operator.get(url)
    assert page.status_code == 200
    response = await operator.post(
        url,
        data={
            "csrf_token": csrf_of(page.text),
            "script_company": "ליד פלוס",
            "record_present": "1",
            "record": "on",
        },
    )
    assert response.status_code == 409, response.text
    assert "cannot change while running" not in response.text
    assert "יש להשהות" in response.text
    assert "להקליט את השיחות" in response.text  # the field by its label
    no_token = await operator.post(url, data={"record_present": "1", "record": "on"})
    assert no_token.status_code == 403
    async with keyed_app.state.voicebot.sessions() as session:
        stored = await session.get(Campaign, campaign_id)
        assert stored is not None and stored.record is False


@pytest.mark.parametrize("value", ["10.0.0.0/33", "10.0.0.2;10.0.0.3", "proxy.internal"])
def test_unreadable_forwarded_allow_ips_is_a_startup_error(value: str) -> None:
    """A FORWARDED_ALLOW_IPS entry that is neither an address, a network nor ``*`` stops the
    settings from loading with the entry named (was: uvicorn kept it as a literal that no
    peer matches, so the proxy was silently untrusted and every operator behind it shared
    one sign-in throttle)."""
    with pytest.raises(ConfigError, match=f"FORWARDED_ALLOW_IPS: .*{re.escape(repr(value))}"):
        make_settings(forwarded_allow_ips=value)


def test_forwarded_allow_ips_is_normalised_for_the_proxy_check() -> None:
    """`` * `` with spaces is "trust all" and entries lose their spaces (was: kept as
    given, so uvicorn saw the literal ' * ', not '*', and trusted nobody)."""
    assert make_settings(forwarded_allow_ips=" * ").forwarded_allow_ips == "*"
    spaced = make_settings(forwarded_allow_ips=" 10.0.0.2 , 2001:db8::/32,").forwarded_allow_ips
    assert spaced == "10.0.0.2,2001:db8::/32"
    assert make_settings(forwarded_allow_ips="  ").forwarded_allow_ips is None
    with pytest.raises(ConfigError, match="'\\*'"):
        make_settings(forwarded_allow_ips="10.0.0.2,*")


@asynccontextmanager
async def _behind_proxy(
    database_url: str, allowed: str, peer: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app (sign-in throttle: 3 failures a minute) whose connections come
    from the proxy address ``peer``, with ``FORWARDED_ALLOW_IPS=allowed``."""
    settings = make_settings(
        database_url=database_url, api_key=API_KEY, secret_key=SECRET,
        auth_failures_per_minute=3, forwarded_allow_ips=allowed,
    )  # fmt: skip
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield http


async def _wrong_key(http: httpx.AsyncClient, forwarded_for: str) -> int:
    """One sign-in with a wrong API key (CSRF token from a fresh form), both requests
    carrying ``X-Forwarded-For: forwarded_for``; the sign-in's status code."""
    headers = {"X-Forwarded-For": forwarded_for}
    form = await http.get("/ui/sign-in", headers=headers)
    response = await http.post(
        "/ui/sign-in",
        data={"api_key": "wrong", "csrf_token": csrf_of(form.text), "next": ""},
        headers=headers,
    )
    return response.status_code


@pytest.mark.parametrize(
    ("allowed", "peer", "chain"),
    [
        # Two proxies trusted, the left-most entry invented by the client: the right-most
        # untrusted hop (the real client) is counted, whatever the invented one says.
        ("10.0.0.2,10.0.0.3", "10.0.0.2", "{spoof}, 203.0.113.10, 10.0.0.3"),
        # An IPv6 proxy inside a trusted network, an IPv6 client.
        ("2001:db8::/32", "2001:db8::2", "{spoof}, 2a00:1450::10"),
    ],
)
async def test_invented_forwarded_for_hops_do_not_dodge_the_throttle(
    database_url: str, allowed: str, peer: str, chain: str
) -> None:
    """A client behind trusted proxies that writes a new X-Forwarded-For on every try is
    still throttled as itself."""
    async with _behind_proxy(database_url, allowed, peer) as http:
        codes = [
            await _wrong_key(http, chain.format(spoof=f"192.0.2.{attempt}")) for attempt in range(4)
        ]
    assert codes == [401, 401, 401, 429]


@pytest.mark.parametrize(
    ("allowed", "peer", "chain"),
    [
        # `voicebot serve --host ::` (dual stack): an IPv4 proxy connects as ::ffff:a.b.c.d.
        ("10.0.0.2", "::ffff:10.0.0.2", "{client}"),
        ("10.0.0.0/24", "::ffff:10.0.0.2", "{client}"),
        # A second proxy that wrote its hop in the mapped form.
        ("10.0.0.2,10.0.0.3", "10.0.0.2", "{client}, ::ffff:10.0.0.3"),
    ],
)
async def test_ipv4_mapped_proxy_addresses_are_trusted(
    database_url: str, allowed: str, peer: str, chain: str
) -> None:
    """A listed IPv4 proxy seen in its IPv4-mapped IPv6 form is still that proxy: each
    operator behind it keeps an own sign-in throttle (was: untrusted, so the proxy's address
    was the client and the third failure of one operator locked out all)."""
    async with _behind_proxy(database_url, allowed, peer) as http:
        codes = [await _wrong_key(http, chain.format(client="203.0.113.10")) for _ in range(4)]
        other = await _wrong_key(http, chain.format(client="198.51.100.20"))
    assert codes == [401, 401, 401, 429]
    assert other == 401


async def test_trust_all_counts_the_hop_the_proxy_wrote_not_the_clients_claim(
    database_url: str,
) -> None:
    """``FORWARDED_ALLOW_IPS=*`` behind one proxy that appends (nginx's
    ``$proxy_add_x_forwarded_for``): a client writing a new X-Forwarded-For on every try is
    throttled by the address the proxy appended (was: uvicorn's ``*`` takes the left-most
    entry, the client's own claim, so the sign-in throttle never fired)."""
    async with _behind_proxy(database_url, "*", "10.0.0.2") as http:
        codes = [await _wrong_key(http, f"192.0.2.{attempt}, 203.0.113.10") for attempt in range(4)]
        api = await http.get(
            "/api/v1/calls", headers={"X-Forwarded-For": "192.0.2.99, 203.0.113.10"}
        )
    assert codes == [401, 401, 401, 429]
    assert api.status_code == 429  # the API's auth limit shares the bucket
