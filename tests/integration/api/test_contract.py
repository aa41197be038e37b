"""The contract test: every operation of the generated OpenAPI document, driven by
schemathesis with generated valid and invalid input, on SQLite and Postgres. Fails on
any 5xx, a status the document does not list, a wrong content type, or a body that does
not match the documented schema."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette

from tests.conftest import make_settings
from voicebot.api.openapi import build_openapi
from voicebot.app import create_app
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.db.models import Call, CallTurn, Campaign, CampaignLead, DoNotCall, Lead, Meeting
from voicebot.db.types import utcnow

EXAMPLES_PER_OPERATION = int(os.environ.get("VOICEBOT_CONTRACT_EXAMPLES", "4"))
"""Generated cases per operation and mode. The default run keeps every operation and mode
covered with a few cases each (about 68 requests per example per database, a few seconds
on a quiet machine); ``scripts/full_suite.sh`` (``make test-full``) runs 50 (3,413 cases per
database). Deeper still: VOICEBOT_CONTRACT_EXAMPLES=1000 and VOICEBOT_CONTRACT_RANDOM=1
(new inputs each run instead of the same derandomized ones)."""
DERANDOMIZE = os.environ.get("VOICEBOT_CONTRACT_RANDOM") != "1"
SEEDED_DNC_PHONE = "+972544567899"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def contract_app(database_url: str) -> Iterator[Starlette]:
    """The app over this DB; schemathesis runs its lifespan once on its own event loop."""
    app = create_app(make_settings(database_url=database_url, twilio_validate_signatures=False))
    yield app
    shutdown_lifespans()


async def _seed(database_url: str) -> dict[str, Any]:
    """Rows for generated requests to find: a lead in a campaign, its call with a turn,
    a meeting, a do-not-call entry. Returns their path parameters."""
    engine = create_engine(make_settings(database_url=database_url))
    async with create_sessionmaker(engine)() as session:
        leads = [Lead(phone=f"+97254456780{i}", name="דנה", tags=["vip"]) for i in range(3)]
        campaign = Campaign(name="חורף")
        session.add_all([*leads, campaign])
        await session.flush()
        session.add(CampaignLead(campaign_id=campaign.id, lead_id=leads[0].id))
        call = Call(
            call_sid="CA" + "1" * 32,
            lead_id=leads[0].id,
            campaign_id=campaign.id,
            direction="outbound",
            status="completed",
        )
        session.add(call)
        await session.flush()
        session.add(CallTurn(call_id=call.id, seq=1, role="assistant", text="שלום"))
        start = utcnow() + timedelta(days=3)
        meeting = Meeting(
            lead_id=leads[1].id,
            call_id=call.id,
            start_at=start,
            end_at=start + timedelta(minutes=30),
            duration_min=30,
        )
        session.add_all([meeting, DoNotCall(phone=SEEDED_DNC_PHONE, source="api")])
        await session.commit()
        seeded = {
            "lead_id": leads[0].id,
            "campaign_id": campaign.id,
            "call_id": call.id,
            "meeting_id": meeting.id,
            "phone": SEEDED_DNC_PHONE,
        }
    await engine.dispose()
    return seeded


def _run_operation(app: Starlette, operation: Any, mode: GenerationMode, **fixed: Any) -> int:
    """Run one operation's generated cases; returns how many ran. An operation that takes
    no input has one case, sent EXAMPLES_PER_OPERATION times (the server's state moves on
    between them: metrics, readiness)."""
    ran = 0
    repeat = 1 if _takes_input(operation) else EXAMPLES_PER_OPERATION

    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=DERANDOMIZE,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    def run(case: schemathesis.Case) -> None:
        nonlocal ran
        for _ in range(repeat):
            ran += 1
            case.call_and_validate(app=app, checks=CHECKS)

    run()
    return ran


CONTRACT_TIMEOUT_S = 120 + 20 * EXAMPLES_PER_OPERATION
"""Whole-run bound, scaled with the examples (the suite's 120 s per test is for one
behaviour; 50 examples are 3,400 requests, 900 s per database at load average 15)."""


@pytest.mark.slow
@pytest.mark.timeout(CONTRACT_TIMEOUT_S)
def test_every_operation_holds_its_contract(contract_app: Starlette, database_url: str) -> None:
    """Each operation, with generated valid and invalid input, answers as documented; then
    each operation on a seeded row (lead, campaign, call, meeting), with valid input."""
    seeded = asyncio.run(_seed(database_url))
    schema = schemathesis.openapi.from_dict(build_openapi(contract_app.routes))
    operations = [result.ok() for result in schema.get_all_operations()]
    counts: Counter[str] = Counter()
    started = time.monotonic()
    for operation in operations:
        modes = [GenerationMode.POSITIVE]
        if _takes_input(operation):
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            try:
                ran = _run_operation(contract_app, operation, mode)
            except Unsatisfiable:  # nothing about this operation's input can be made invalid
                ran = 0
            counts[f"{_label(operation)}{mode.value}"] = ran
    # Destructive operations last, so the others still find the seeded rows.
    for operation in sorted(operations, key=lambda op: op.method.upper() == "DELETE"):
        names = _path_names(operation)
        if not names or not names <= {*seeded, "action"}:
            continue
        fixed = {name: seeded[name] for name in names if name in seeded}
        ran = _run_operation(
            contract_app, operation, GenerationMode.POSITIVE, path_parameters=fixed
        )
        counts[f"{_label(operation)}seeded"] = ran
    elapsed_s = time.monotonic() - started
    assert len(operations) >= 30
    positive = {key: n for key, n in counts.items() if key.endswith("positive")}
    short = [key for key, n in positive.items() if n < EXAMPLES_PER_OPERATION]
    assert short == [], short
    for key, n in sorted(counts.items()):
        print(f"  {n:4d}  {key}")
    seeded_cases = sum(n for key, n in counts.items() if key.endswith("seeded"))
    print(
        f"contract: {len(operations)} operations, {sum(counts.values())} cases "
        f"({sum(positive.values())} valid, {seeded_cases} on seeded rows), {elapsed_s:.0f} s"
    )


def _label(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path} "


def _path_names(operation: Any) -> set[str]:
    parameters = operation.definition.raw.get("parameters", [])
    return {p["name"] for p in parameters if p["in"] == "path"}


def _takes_input(operation: Any) -> bool:
    definition = operation.definition.raw
    return bool(definition.get("parameters") or definition.get("requestBody"))
