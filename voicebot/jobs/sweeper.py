"""The sweeper: the periodic pass that makes campaigns dial, in every dialing process.

Every ``voicebot worker`` runs one (and ``voicebot serve`` on the embedded default). Each
pass first drains the opt-out outbox into do-not-call (:func:`voicebot.db.optouts.drain_outbox`):
a pass whose drain fails (the database or the outbox down) claims no one, so nobody who
asked to be removed is dialed. Then, for each campaign that is running (or
paused/cancelled with attempts still live, or cancelled with members still due):

1. take the campaign's lease (a compare-and-set on ``campaigns.lease_owner/lease_until``),
   so one sweeper handles a campaign at a time; a dead sweeper's lease runs out after
   ``CAMPAIGN_LEASE_S`` and another takes over;
2. settle stuck attempts from Twilio's record (:mod:`voicebot.jobs.reconcile`);
3. running: claim due members within the pacing budget and COMMIT
   (:mod:`voicebot.jobs.claims`), then dial each claimed attempt in a task of this
   process, paced across processes (:mod:`voicebot.jobs.pacing`); claimed attempts no
   dialer holds (their process died) are adopted; no member left → ``completed``;
4. paused: claimed attempts are given back; cancelled: also, and live calls are hung up.

Messages only nudge (:meth:`Sweeper.wake`): a lost one delays dialing by at most one
sweep period. Errors of one campaign's pass (database, Twilio, Redis) are logged and
the next pass tries again; repeated refusals on our side pause the campaign with the
reason in ``status_reason``.
"""

from __future__ import annotations

import asyncio
import math
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import structlog
from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.config import Settings
from voicebot.db.models import (
    LIVE_ATTEMPT_STATUSES,
    AttemptStatus,
    Campaign,
    CampaignAttempt,
    CampaignLead,
    CampaignStatus,
)
from voicebot.db.optouts import drain_outbox
from voicebot.db.types import utcnow
from voicebot.errors import TelephonyError, VoicebotError
from voicebot.jobs.claims import (
    DUE_STATES,
    IN_FLIGHT_STATES,
    cancel_pending,
    claim_due,
    release_claimed,
)
from voicebot.jobs.dial import DialOutcome, dial_attempt
from voicebot.jobs.pacing import Pacer
from voicebot.jobs.reconcile import reconcile_campaign
from voicebot.store.optout_outbox import OptOutOutbox
from voicebot.telephony.rest import TwilioDialer
from voicebot.webhooks.events import EventType, emit_campaign

log = structlog.get_logger(__name__)

OUR_FAILURES_TO_PAUSE = 3
"""Consecutive refusals on our side (after the REST client's own retries) that pause."""
CLAIM_LOOKAHEAD_PASSES = 2.0
"""Claims per pass cover this many sweep periods of dialing at the campaign's rate."""


@dataclass
class SweepReport:
    campaigns: int = 0
    claimed: int = 0
    reconciled: int = 0
    optouts_drained: int = 0
    completed: list[int] = field(default_factory=list)


def new_owner_id() -> str:
    """A sweeper identity unique to this process start (host, pid, random)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(4)}"


class Sweeper:
    """One process's campaign sweeper; :meth:`run` until ``stop`` is set."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        twilio: TwilioDialer,
        pacer: Pacer,
        owner: str | None = None,
        on_dial: Callable[[int, DialOutcome], None] | None = None,
        optouts: OptOutOutbox | None = None,
    ) -> None:
        self.settings = settings
        self.optouts = optouts
        self.sessions = sessions
        self.twilio = twilio
        self.pacer = pacer
        self.owner = owner or new_owner_id()
        self._on_dial = on_dial
        self._busy: set[int] = set()
        self._failures: dict[int, int] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._group: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def dialing(self) -> frozenset[int]:
        """Attempt ids this process is pacing or sending now."""
        return frozenset(self._busy)

    def wake(self) -> None:
        """Start the next pass now (thread-safe; a no-op before :meth:`run`)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every ``CAMPAIGN_SWEEP_INTERVAL_S`` (or when woken) until ``stop``; the
        dial tasks are owned by this call and cancelled with it."""
        self._loop = asyncio.get_running_loop()
        async with asyncio.TaskGroup() as group:
            self._group = group
            while not stop.is_set():
                try:
                    await self.sweep_once()
                except (SQLAlchemyError, OSError, VoicebotError) as exc:
                    log.warning("sweeper.pass_failed", error=f"{type(exc).__name__}: {exc}")
                except Exception:  # a bug must not stop dialing for good
                    log.exception("sweeper.pass_crashed")
                self._wake.clear()
                waits = [
                    asyncio.ensure_future(self._wake.wait()),
                    asyncio.ensure_future(stop.wait()),
                ]
                _, pending = await asyncio.wait(
                    waits,
                    timeout=self.settings.campaign_sweep_interval_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for waiter in pending:
                    waiter.cancel()
            for task in list(self._tasks):
                task.cancel()
        self._group = None

    async def sweep_once(self) -> SweepReport:
        """One pass over every campaign with work (see the module docstring)."""
        report = SweepReport()
        if self.optouts is not None:
            # Raises on failure: no claim may run past an opt-out not yet written.
            report.optouts_drained = await drain_outbox(self.optouts, self.sessions, self.settings)
        async with self.sessions() as session:
            rows = await campaigns_with_work(session)
        for campaign_id, status in rows:
            try:
                if not await self._lease(campaign_id):
                    continue
                report.campaigns += 1
                report.reconciled += await reconcile_campaign(
                    settings=self.settings,
                    sessions=self.sessions,
                    twilio=self.twilio,
                    campaign_id=campaign_id,
                    busy=self._busy,
                )
                if status == CampaignStatus.RUNNING:
                    report.claimed += await self._dial_due(campaign_id, report)
                else:
                    await self._wind_down(campaign_id, status)
            except (SQLAlchemyError, OSError, VoicebotError) as exc:
                log.warning(
                    "sweeper.campaign_failed",
                    campaign_id=campaign_id,
                    error=f"{type(exc).__name__}: {exc}",
                )
        return report

    async def _lease(self, campaign_id: int) -> bool:
        now = utcnow()
        async with self.sessions() as session:
            result = await session.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id)
                .where(
                    or_(
                        Campaign.lease_owner.is_(None),
                        Campaign.lease_owner == self.owner,
                        Campaign.lease_until < now,
                    )
                )
                .values(
                    lease_owner=self.owner,
                    lease_until=now + timedelta(seconds=self.settings.campaign_lease_s),
                )
                .execution_options(synchronize_session=False)
            )
            await session.commit()
        return bool(getattr(result, "rowcount", 0))

    async def _dial_due(self, campaign_id: int, report: SweepReport) -> int:
        async with self.sessions() as session:
            campaign = await session.get(Campaign, campaign_id)
            if campaign is None or campaign.status != CampaignStatus.RUNNING:
                return 0
            cps = campaign.calls_per_second
            waiting = list(
                (
                    await session.scalars(
                        select(CampaignAttempt.id).where(
                            CampaignAttempt.campaign_id == campaign_id,
                            CampaignAttempt.status == AttemptStatus.CLAIMED,
                        )
                    )
                ).all()
            )
            budget = math.ceil(
                cps * self.settings.campaign_sweep_interval_s * CLAIM_LOOKAHEAD_PASSES
            )
            limit = max(0, budget + 1 - len(waiting))
            claim = await claim_due(
                session, settings=self.settings, campaign=campaign, owner=self.owner, limit=limit
            )
            remaining = await session.scalar(
                select(func.count(CampaignLead.id)).where(
                    CampaignLead.campaign_id == campaign_id,
                    CampaignLead.state.in_((*DUE_STATES, *IN_FLIGHT_STATES)),
                )
            )
        for attempt_id in [*waiting, *claim.claimed]:
            self._spawn(attempt_id, campaign_id, cps)
        if not remaining:
            await self._complete(campaign_id, report)
        return len(claim.claimed)

    def _spawn(self, attempt_id: int, campaign_id: int, cps: float) -> None:
        if attempt_id in self._busy or self._group is None:
            return
        self._busy.add(attempt_id)
        task = self._group.create_task(self._dial(attempt_id, campaign_id, cps))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dial(self, attempt_id: int, campaign_id: int, cps: float) -> None:
        try:
            result = await dial_attempt(
                settings=self.settings,
                sessions=self.sessions,
                placer=self.twilio,
                pacer=self.pacer,
                attempt_id=attempt_id,
                campaign_id=campaign_id,
                campaign_cps=cps,
            )
        except (SQLAlchemyError, OSError, VoicebotError) as exc:
            # The attempt stays claimed (or dialing): the next pass adopts or reconciles it.
            log.warning("sweeper.dial_failed", attempt_id=attempt_id, error=type(exc).__name__)
            return
        except Exception:  # one dial's bug must not end the sweeper's tasks
            log.exception("sweeper.dial_crashed", attempt_id=attempt_id)
            return
        finally:
            self._busy.discard(attempt_id)
        if self._on_dial is not None:
            self._on_dial(campaign_id, result.outcome)
        if result.outcome == DialOutcome.OUR_FAILURE or result.server_error:
            count = self._failures.get(campaign_id, 0) + 1
            self._failures[campaign_id] = count
            if result.auth_failed or count >= OUR_FAILURES_TO_PAUSE:
                await pause_campaign(
                    self.sessions, campaign_id, reason=result.reason or "", settings=self.settings
                )
        elif result.outcome in (DialOutcome.PLACED, DialOutcome.LEAD_FAILED):
            self._failures.pop(campaign_id, None)

    async def _complete(self, campaign_id: int, report: SweepReport) -> None:
        async with self.sessions() as session:
            result = await session.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.RUNNING)
                .where(
                    ~exists().where(
                        and_(
                            CampaignLead.campaign_id == campaign_id,
                            CampaignLead.state.in_((*DUE_STATES, *IN_FLIGHT_STATES)),
                        )
                    )
                )
                .values(status=CampaignStatus.COMPLETED, finished_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0):
                await emit_campaign(
                    session, self.settings, EventType.CAMPAIGN_COMPLETED, campaign_id
                )
            await session.commit()
        if getattr(result, "rowcount", 0):
            report.completed.append(campaign_id)
            log.info("campaign.completed", campaign_id=campaign_id)

    async def _wind_down(self, campaign_id: int, status: str) -> None:
        """Paused or cancelled: give back what was claimed; cancelled: hang up live calls."""
        async with self.sessions() as session:
            await release_claimed(session, campaign_id, reason=f"campaign {status}")
            if status == CampaignStatus.CANCELLED:
                await cancel_pending(session, campaign_id)
            await session.commit()
        if status == CampaignStatus.CANCELLED:
            await hang_up_live(self.sessions, self.twilio, campaign_id)


async def pause_campaign(
    sessions: async_sessionmaker[AsyncSession],
    campaign_id: int,
    *,
    reason: str,
    settings: Settings | None = None,
) -> bool:
    """running → paused with ``reason`` shown in the stats (a compare-and-set); gives back
    the claimed attempts (with ``settings``: the ``campaign.paused`` webhook event). False
    when the campaign was not running."""
    async with sessions() as session:
        result = await session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.RUNNING)
            .values(status=CampaignStatus.PAUSED, status_reason=reason[:500])
            .execution_options(synchronize_session=False)
        )
        paused = bool(getattr(result, "rowcount", 0))
        if paused:
            await release_claimed(session, campaign_id, reason="campaign paused")
            if settings is not None:
                await emit_campaign(session, settings, EventType.CAMPAIGN_PAUSED, campaign_id)
        await session.commit()
    if paused:
        log.warning("campaign.paused_by_engine", campaign_id=campaign_id, reason=reason)
    return paused


async def hang_up_live(
    sessions: async_sessionmaker[AsyncSession], twilio: TwilioDialer, campaign_id: int
) -> int:
    """Hang up every placed call of the campaign through the REST API; their final status
    callbacks settle them. Returns how many hang-ups were sent."""
    async with sessions() as session:
        sids = (
            await session.scalars(
                select(CampaignAttempt.call_sid).where(
                    CampaignAttempt.campaign_id == campaign_id,
                    CampaignAttempt.status == AttemptStatus.PLACED,
                    CampaignAttempt.call_sid.is_not(None),
                )
            )
        ).all()
    sent = 0
    for sid in sids:
        if sid is None:
            continue
        try:
            await twilio.hangup(sid)
            sent += 1
        except TelephonyError as exc:
            log.warning("campaign.hangup_failed", campaign_id=campaign_id, error=exc.message)
    return sent


async def campaigns_with_work(session: AsyncSession) -> list[tuple[int, str]]:
    """The (id, status) of every campaign a pass visits: running, or with attempts still
    live, or cancelled with members still due.

    The last: a final status settled while its campaign was being cancelled reads the
    campaign as of before the cancel (the statement's snapshot, or the stale join row of a
    lock wait) and leaves its member in retry after ``cancel_pending`` ran; the next pass
    winds the campaign down again, which skips it.
    """
    live = exists().where(
        and_(
            CampaignAttempt.campaign_id == Campaign.id,
            CampaignAttempt.status.in_(LIVE_ATTEMPT_STATUSES),
        )
    )
    cancelled_due = and_(
        Campaign.status == CampaignStatus.CANCELLED,
        exists().where(
            and_(CampaignLead.campaign_id == Campaign.id, CampaignLead.state.in_(DUE_STATES))
        ),
    )
    rows = await session.execute(
        select(Campaign.id, Campaign.status).where(
            or_(Campaign.status == CampaignStatus.RUNNING, live, cancelled_due)
        )
    )
    return [(int(cid), str(status)) for cid, status in rows.all()]
