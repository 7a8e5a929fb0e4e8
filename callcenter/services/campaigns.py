"""Outbound campaigns in the center: agents join a campaign, the dialer calls its list.

    preview:     the agent gets the record and the script (`campaign_preview`), then sends
                 `campaign_dial` (the click-to-dial path of voice.dial: their phone, then the
                 customer) or `campaign_skip` with a reason
    progressive: one call per free joined agent; predictive: paced (dialer_pacing.py); both
                 through dialer.py (customer first). The pop (`campaign_pop`) arrives as the
                 customer answers, before the agent's phone rings
    each:        an outbound interaction per attempt, on the customer's timeline with its outcome;
                 the agent ends the record with one of the campaign's dispositions
                 (`campaign_disposition`), which frees them for the next call

Agents who join are not-ready for inbound routing (reason `campaign`) until they leave. Every
dial passes the rules (dialer_rules.py) first; a stopped or paused campaign dials nothing more.
Supervisors control campaigns (`campaign_control`) and watch their progress (`campaign_watch` ->
`campaign_progress`).

Several processes (scale-out, `center.scaleout` set): exactly one process dials a progressive or
predictive campaign at a time. It needs the AMI connection (the dialer listens to the PBX's
events), so the AMI leader dials, and it holds the lease ``campaign:<id>`` (scaleout/lease.py)
while it does; a start on another process only marks the campaign running, and the leader picks
it up (`adopt`, every poll). Its agents are members there: a join, leave or disposition sent to
another process is forwarded to it (the pops reach the agent's console through the fan-out);
if it dies, its members join again. Each round the holder re-reads the campaign (a pause or stop
on any process is seen) and renews its lease; if it cannot, it places nothing more, lets the
calls in the air end (their outcomes are recorded by the hooks, once) and lets go. If it lost the
AMI connection, those calls' events go to the next leader: each call not yet connected to an
agent is recorded at once, as failed (abandoned if it waited for an agent), and retried later by
the rules. When the holder dies its lease expires and the new AMI leader takes the campaign over.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from callcenter.facade import MessageRefused, WebUser
from callcenter.services.dialer import Dial, Dialer
from callcenter.services.dialer_pacing import Window
from callcenter.services.dialer_rules import (
    ANSWERED,
    SKIPPED,
    Attempt,
    Schedule,
    check,
    next_try,
)
from crm_core.campaigns import Campaign, CampaignRecord, CampaignStore
from crm_core.errors import CrmError, NotFound
from routing import AgentPresence, Presence, RoutingError, WrapUpEnded

log = logging.getLogger(__name__)
SUPERVISORS = frozenset({"supervisor", "admin"})


@dataclass(eq=False)
class Member:
    """A joined agent, as the campaign's pool sees them."""

    agent_id: str
    user_id: int
    username: str
    dial_string: str | None
    state: str = "free"  # free | busy (a call or a preview) | wrap (waiting for the disposition)
    record: CampaignRecord | None = None
    interaction_id: int | None = None
    since: float = field(default_factory=time.monotonic)


class Run:
    """One campaign in this process: its members, its dialer and its loop."""

    def __init__(self, svc: CampaignService, campaign: Campaign) -> None:
        self.svc, self.campaign = svc, campaign
        self.members: dict[str, Member] = {}
        self.dialer: Dialer | None = None
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.lease: Any = None  # scale-out: this process's lease on dialing the campaign

    @property
    def status(self) -> str:
        return self.campaign.status

    # the dialer's pool
    def take(self) -> Member | None:
        free = [m for m in self.members.values() if m.state == "free"]
        if not free:
            return None
        m = min(free, key=lambda x: x.since)  # the longest idle
        m.state, m.since = "busy", time.monotonic()
        return m

    def counts(self) -> tuple[int, int]:
        free = sum(1 for m in self.members.values() if m.state == "free")
        return free, len(self.members) - free

    # the dialer's hooks
    async def connected(self, dial: Dial, agent: Any) -> None:
        rec, iid = dial.ref
        m: Member = agent
        m.record, m.interaction_id = rec, iid
        await self.svc._state(
            iid,
            "answered",
            agent_id=m.user_id,
            events=(("campaign_connected", {"agent": m.username, "attempt": rec.attempts + 1}),),
        )
        await self.svc.store.log_attempt(
            self.campaign.id, rec.id, ANSWERED, agent=m.username, interaction_id=iid
        )
        await self.svc.pop(self, m, rec, iid, "pop")
        self.svc.progress_soon(self)

    async def outcome(self, dial: Dial, outcome: str) -> None:
        rec, iid = dial.ref
        if outcome == ANSWERED:
            return
        await self.svc.attempt_failed(self, rec, iid, outcome)
        self.wake.set()

    async def ended(self, dial: Dial) -> None:
        m = dial.agent
        if isinstance(m, Member) and m.interaction_id is not None:
            m.state = "wrap"
            await self.svc._state(m.interaction_id, "ended", events=(("campaign_call_ended", {}),))
            self.svc.hub.send(
                m.user_id,
                "campaign_state",
                campaign_id=self.campaign.id,
                state="wrap",
                interaction_id=m.interaction_id,
                record_id=m.record.id if m.record else None,
            )


class CampaignService:
    def __init__(
        self,
        center: Any,
        *,
        utc: Callable[[], datetime] = lambda: datetime.now(UTC),
        poll_s: float = 1.0,
        hold_s: float = 2.0,
        ring_timeout_s: float = 25.0,
        trunk: str = "PJSIP/{digits}@trunk",
    ) -> None:
        self.center = center
        self.crm = center.store
        self.store = CampaignStore(center.store.db)
        self.voice, self.runner, self.directory, self.hub = (
            center.voice,
            center.runner,
            center.directory,
            center.hub,
        )
        self.utc, self.poll_s, self.hold_s, self.ring_timeout_s, self.trunk = (
            utc,
            poll_s,
            hold_s,
            ring_timeout_s,
            trunk,
        )
        self.runs: dict[int, Run] = {}
        self.watchers: dict[int, set[int]] = {}  # campaign -> supervisor user ids
        self._pending_progress: set[int] = set()
        self.email: Any = None  # EmailCampaigns (email_campaigns.py), set by install()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.wall: Callable[[], float] = time.time  # lease times: the center's common time base
        self._adopter: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self._adopter is not None:
            self._adopter.cancel()
            await asyncio.gather(self._adopter, return_exceptions=True)
        for run in list(self.runs.values()):
            await self._halt(run)
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, aw: Any) -> None:
        t = asyncio.ensure_future(aw)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def run_of(self, campaign_id: int) -> Run:
        run = self.runs.get(campaign_id)
        if run is None:
            try:
                camp = await self.store.get(campaign_id)
            except NotFound:
                raise MessageRefused("not_found", f"no campaign {campaign_id}") from None
            run = self.runs[campaign_id] = Run(self, camp)
        return run

    # ------------------------------------------------------------------ supervisor: control
    async def control(self, campaign_id: int, action: str, by: str = "system") -> Campaign:
        run = await self.run_of(campaign_id)
        new = {"start": "running", "resume": "running", "pause": "paused", "stop": "stopped"}.get(action)
        if new is None:
            raise MessageRefused("invalid", "action is start, pause, resume or stop")
        if run.status in ("stopped", "finished") and new == "running" and action == "resume":
            raise MessageRefused("conflict", f"the campaign is {run.status}")
        run.campaign = dataclasses.replace(run.campaign, status=new)  # the loops see it at once
        run.campaign = await self.store.set_status(campaign_id, new)  # stop: nothing stays claimed
        await self.crm_audit(by, f"campaign_{action}", campaign_id)
        if new == "running":
            if self._shared() is None or run.campaign.mode not in ("progressive", "predictive"):
                self._start(run)
            elif self._can_dial() and await self._hold(run):
                self._start(run)
            # else: another process dials it (the AMI leader picks it up: adopt)
        else:
            run.wake.set()  # the loop sees the status at once and dials nothing more
        self.progress_soon(run)
        return run.campaign

    async def crm_audit(self, actor: str, action: str, campaign_id: int) -> None:
        log.info("%s: %s campaign %s", actor, action, campaign_id)

    def _start(self, run: Run) -> None:
        if run.campaign.mode in ("progressive", "predictive") and run.dialer is None:
            if self.voice.ami is None:
                raise MessageRefused("unavailable", "no connection to the PBX")
            run.dialer = Dialer(
                self.voice.ami,
                run,
                run,
                mode=run.campaign.mode,
                now=time.monotonic,
                cap=run.campaign.abandon_cap_pct / 100.0,
                hold_s=self.hold_s,
                ring_timeout_s=self.ring_timeout_s,
                trunk=self.trunk,
                prefix=f"cc-camp{run.campaign.id}",
                window=Window(span_s=900),
            )
            run.dialer.start()
        if run.task is None or run.task.done():
            loop = self._email_loop(run) if run.campaign.mode == "email" else self._loop(run)
            run.task = asyncio.get_running_loop().create_task(loop)
        for m in run.members.values():
            if run.campaign.mode == "preview" and m.state == "free":
                self._spawn(self._preview_next(run, m))
        run.wake.set()

    async def _halt(self, run: Run) -> None:
        if run.task is not None:
            run.task.cancel()
            await asyncio.gather(run.task, return_exceptions=True)
        if run.dialer is not None:
            await run.dialer.close()
        if run.lease is not None:
            await run.lease.release()

    # ------------------------------------------------------------------ scale-out: one dialer
    def _shared(self) -> Any:
        return getattr(self.center, "scaleout", None)

    def _can_dial(self) -> bool:
        """This process holds the PBX connection itself (not the proxy to the AMI leader)."""
        ami = self.voice.ami
        return ami is not None and hasattr(ami, "subscribe")

    async def _hold(self, run: Run) -> bool:
        """Take or renew this process's lease on dialing `run` (True: dial). Without scale-out:
        always. Redis away: only while the lease taken is surely still live."""
        so = self._shared()
        if so is None:
            return True
        from callcenter.scaleout.lease import Lease

        if run.lease is None:
            run.lease = Lease(so.client, so.prefix, f"campaign:{run.campaign.id}", so.origin,
                              so.settings.scaleout.lease_ttl_s)
        lease, now = run.lease, self.wall()
        try:
            if lease.token and await lease.renew(now):
                return True
            return bool(await lease.acquire(now))
        except (RedisError, OSError) as e:
            log.warning("campaign %s: lease not renewed (%s)", run.campaign.id, e)
            return bool(lease.token) and now < lease.until - lease.ttl_s / 2

    async def adopt(self) -> list[int]:
        """Scale-out, on the process holding the AMI connection: start dialing the running
        progressive/predictive campaigns nobody dials (started elsewhere, or their holder died).
        On every process: send the running email campaigns (started elsewhere, or their process
        died). Returns the campaigns taken."""
        if self._shared() is None:
            return []
        taken = []
        for camp in await self.store.all():
            if camp.status != "running" or camp.mode not in ("progressive", "predictive", "email"):
                continue
            run = self.runs.get(camp.id)
            if run is not None and run.task is not None and not run.task.done():
                continue
            if camp.mode == "email":  # every process sends (records claimed, the rate shared)
                run = await self.run_of(camp.id)
                run.campaign = camp
                self._start(run)
                taken.append(camp.id)
                continue
            if not self._can_dial():
                continue
            run = await self.run_of(camp.id)
            run.campaign = camp
            if await self._hold(run):
                if run.dialer is not None and run.dialer.ami is not self.voice.ami:
                    await run.dialer.close()  # of an earlier AMI connection
                    run.dialer = None
                self._start(run)
                taken.append(camp.id)
                log.info("campaign %s: dialled by this process from now on", camp.id)
        return taken

    def start_adopting(self, every_s: float = 2.0) -> None:
        async def loop() -> None:
            while True:
                try:
                    await self.adopt()
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - the next pass tries again
                    log.exception("campaign adoption failed")
                await asyncio.sleep(every_s)

        if self._adopter is None:
            self._adopter = asyncio.get_running_loop().create_task(loop())

    async def _still_mine(self, run: Run) -> bool:
        """Scale-out, every round: the campaign as stored (paused or stopped anywhere), and this
        process still the one that dials it."""
        with contextlib.suppress(CrmError, OSError):
            fresh = await self.store.get(run.campaign.id)
            if fresh.status != run.campaign.status:
                run.campaign = fresh
        dialer = run.dialer
        return (run.status == "running" and dialer is not None and self._can_dial()
                and dialer.ami is self.voice.ami and await self._hold(run))

    async def _let_go(self, run: Run) -> None:
        """Stop dialing here: the calls in the air end first (their outcomes are recorded here),
        unless the PBX connection they were placed on is gone."""
        dialer = run.dialer
        while dialer is not None and dialer.in_air and dialer.ami is self.voice.ami:
            await asyncio.sleep(self.poll_s)
        if dialer is not None and dialer.ami is not self.voice.ami:
            dropped = await dialer.drop()  # their outcomes would never come: recorded now, once
            if dropped:
                log.warning("campaign %s: %d calls in the air lost with the PBX connection",
                            run.campaign.id, dropped)
        if dialer is not None and run.dialer is dialer:
            run.dialer = None
            await dialer.close()
        if run.lease is not None:
            await run.lease.release()
        log.info("campaign %s: no longer dialled by this process", run.campaign.id)

    async def _loop(self, run: Run) -> None:
        """Progressive/predictive: place what the pacing asks, every change or poll."""
        while run.status == "running":
            try:
                if self._shared() is not None and not await self._still_mine(run):
                    if run.status == "running":  # another process dials it now
                        await self._let_go(run)
                        return
                    break
                if run.dialer is not None:
                    n = run.dialer.wanted()
                    if n > 0:
                        await self._place(run, n)
                self.progress_soon(run)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the loop outlives one bad round
                log.exception("campaign %s round failed", run.campaign.id)
            run.wake.clear()
            try:
                await asyncio.wait_for(run.wake.wait(), self.poll_s)
            except TimeoutError:
                pass

    async def _email_loop(self, run: Run) -> None:
        """Email: send what the rate limit allows, every poll, until paused or stopped."""
        while run.status == "running":
            try:
                if self._shared() is not None:  # paused or stopped on any process
                    with contextlib.suppress(CrmError, OSError):
                        run.campaign = await self.store.get(run.campaign.id)
                    if run.status != "running":
                        break
                if await self.email.send_due(run.campaign.id):
                    self.progress_soon(run)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the loop outlives one bad round
                log.exception("email campaign %s round failed", run.campaign.id)
            run.wake.clear()
            try:
                await asyncio.wait_for(run.wake.wait(), self.poll_s)
            except TimeoutError:
                pass

    async def _place(self, run: Run, n: int) -> None:
        camp = run.campaign
        for rec in await self.store.claim_due(camp.id, self.utc(), n * 2):
            if n <= 0 or run.status != "running":  # stopped mid-round: back to the list
                await self.store.settle(rec.id, status="pending", next_at=rec.next_at)
                continue
            if not await self._allowed(run, rec):
                continue
            iid = await self._open_attempt(run, rec)
            assert run.dialer is not None
            if run.status != "running":  # checked again right before the Originate
                await self.store.settle(rec.id, status="pending", next_at=rec.next_at)
                continue
            await run.dialer.place((rec, iid), rec.phone or "")  # its outcome comes through the hooks
            n -= 1

    async def _allowed(self, run: Run, rec: CampaignRecord) -> bool:
        """The rules, before every dial; a refused record is excluded, or waits for its time."""
        camp = run.campaign
        verdict = check(
            Attempt(
                campaign_status=run.status,
                now=self.utc(),
                phone=rec.phone,
                timezone=rec.timezone,
                dnc=await self.store.dnc("phone", rec.phone) if rec.phone else None,
                blacklisted=await self.store.blacklisted(rec.customer_id),
                attempts=rec.attempts,
                max_attempts=camp.max_attempts,
                next_at=None,
            ),
            Schedule.from_dict(camp.schedule),
        )
        if verdict.ok:
            return True
        if verdict.final:
            status = "failed" if verdict.reason == "max_attempts" else "excluded"
            await self.store.settle(rec.id, status=status, last_outcome=verdict.reason)
        else:
            await self.store.settle(
                rec.id, status="pending", next_at=verdict.retry_at, last_outcome=rec.last_outcome
            )
        return False

    async def _open_attempt(self, run: Run, rec: CampaignRecord, agent: Member | None = None) -> int:
        camp = run.campaign
        inter = await self.crm.open_interaction(
            "voice",
            "outbound",
            rec.customer_id,
            to_address=rec.phone,
            queue=camp.queue,
            skills=dict(camp.skills),
            events=(
                (
                    "campaign_dial",
                    {
                        "campaign_id": camp.id,
                        "campaign": camp.name,
                        "mode": camp.mode,
                        "record_id": rec.id,
                        "attempt": rec.attempts + 1,
                        **({"agent": agent.username} if agent else {}),
                    },
                ),
            ),
        )
        await self.store.settle(rec.id, status="active", interaction_id=inter.id)
        return inter.id

    async def attempt_failed(self, run: Run, rec: CampaignRecord, iid: int, outcome: str) -> None:
        """An attempt that did not reach an agent: logged, then retried later or given up."""
        camp = run.campaign
        attempts = rec.attempts + 1
        at = next_try(
            outcome, attempts=attempts, max_attempts=camp.max_attempts, retry_s=camp.retry_s, now=self.utc()
        )
        await self.store.log_attempt(camp.id, rec.id, outcome, interaction_id=iid)
        state = "abandoned" if outcome == "abandoned" else "failed"
        await self._state(
            iid,
            state,
            events=(
                (
                    "campaign_outcome",
                    {
                        "outcome": outcome,
                        "attempt": attempts,
                        "next_at": at.isoformat() if at else None,
                        **({"message": "cc-campaign-abandon"} if outcome == "abandoned" else {}),
                    },
                ),
            ),
        )
        if at is None:
            await self.store.settle(rec.id, status="failed", attempts=attempts, last_outcome=outcome)
        else:
            await self.store.settle(
                rec.id, status="pending", attempts=attempts, next_at=at, last_outcome=outcome
            )
        self.progress_soon(run)

    async def _state(self, iid: int, state: str, **kw: Any) -> None:
        try:
            await self.crm.set_state(iid, state, **kw)
        except CrmError as e:
            await self.crm.append_event(iid, "state_failed", ok=False, data={"state": state, "error": str(e)})
            for kind, data in kw.get("events", ()):
                await self.crm.append_event(iid, kind, data=data)

    # ------------------------------------------------------------------ agents
    async def join(self, user: WebUser, campaign_id: int) -> dict[str, Any]:
        run = await self.run_of(campaign_id)
        if (self._shared() is not None and run.campaign.mode in ("progressive", "predictive")
                and not self._can_dial()):  # the center forwards it to the process that dials
            raise MessageRefused("not_found", "this campaign's agents join on the process that dials it")
        agent = self.directory.by_user(user.id)
        if agent is None:
            raise MessageRefused("forbidden", "only agents join campaigns")
        for other in self.runs.values():
            if agent.agent_id in other.members and other is not run:
                raise MessageRefused("conflict", f"leave campaign {other.campaign.name} first")
        rec = self.runner.engine.store.agent(agent.agent_id)
        have = dict(rec.profile.skills) if rec is not None else {}
        missing = [k for k, level in run.campaign.skills.items() if have.get(k, 0) < int(level)]
        if missing:  # the campaign's skills (name -> minimum level)
            raise MessageRefused("forbidden", f"this campaign needs the skills {missing}")
        if self.voice.current_for(agent.agent_id) is not None:
            raise MessageRefused("conflict", "finish your current contact first")
        try:
            await self.runner.handle(AgentPresence(agent.agent_id, Presence.NOT_READY, "campaign"))
        except RoutingError as e:
            raise MessageRefused("conflict", str(e)) from None
        self.directory.push_state(agent.agent_id)
        m = run.members.setdefault(
            agent.agent_id, Member(agent.agent_id, user.id, user.username, agent.dial_string)
        )
        camp = run.campaign
        if camp.mode == "preview" and run.status == "running" and m.state == "free":
            self._spawn(self._preview_next(run, m))
        run.wake.set()
        self.progress_soon(run)
        return {
            "type": "campaign_joined",
            "campaign_id": camp.id,
            "name": camp.name,
            "mode": camp.mode,
            "status": camp.status,
            "script": camp.script or "",
            "dispositions": camp.dispositions,
        }

    async def leave(self, user: WebUser) -> dict[str, Any]:
        for run in self.runs.values():
            m = run.members.get(str(user.id))
            if m is None:
                continue
            if m.state != "free" and not (run.campaign.mode == "preview" and m.interaction_id is None):
                raise MessageRefused("conflict", "end your current record first")
            if m.record is not None:  # a preview not dialled: back to the list
                await self.store.settle(m.record.id, status="pending", next_at=m.record.next_at)
            del run.members[m.agent_id]
            self.progress_soon(run)
            return _state(run.campaign.id, "left")
        raise MessageRefused("not_found", "you are in no campaign")

    def _member(self, user: WebUser) -> tuple[Run, Member]:
        for run in self.runs.values():
            m = run.members.get(str(user.id))
            if m is not None:
                return run, m
        raise MessageRefused("not_found", "you are in no campaign")

    async def pop(self, run: Run, m: Member, rec: CampaignRecord, iid: int | None, kind: str) -> None:
        card = None
        if rec.customer_id is not None:
            try:
                card = (await self.crm.customer_card(rec.customer_id)).to_dict()
            except CrmError:
                card = None
        camp = run.campaign
        self.hub.send(
            m.user_id,
            "campaign_record",
            kind=kind,
            campaign_id=camp.id,
            campaign=camp.name,
            mode=camp.mode,
            record=rec.to_dict(),
            interaction_id=iid,
            script=camp.script or "",
            dispositions=camp.dispositions,
            pop={"known": card is not None, "card": card},
        )

    async def _preview_next(self, run: Run, m: Member) -> None:
        """Preview: the next allowed record for this agent (or `campaign_state` empty)."""
        if m.state != "free" or run.status != "running":
            return
        m.state = "busy"
        while True:
            recs = await self.store.claim_due(run.campaign.id, self.utc(), 1)
            if not recs:
                m.state = "free"
                self.hub.send(
                    m.user_id,
                    "campaign_state",
                    campaign_id=run.campaign.id,
                    state="empty",
                    interaction_id=None,
                    record_id=None,
                )
                return
            if await self._allowed(run, recs[0]):
                break
        m.record, m.interaction_id = recs[0], None
        await self.pop(run, m, recs[0], None, "preview")
        self.progress_soon(run)

    async def dial(self, user: WebUser, record_id: int) -> dict[str, Any]:
        """Preview: the agent dials the record they see (their phone first, then the customer)."""
        run, m = self._member(user)
        rec = m.record
        if rec is None or rec.id != record_id or m.interaction_id is not None:
            raise MessageRefused("not_found", "that record is not yours to dial")
        if not await self._allowed(run, rec):  # the rules, again, right before the dial
            m.record, m.state = None, "free"
            self._spawn(self._preview_next(run, m))
            raise MessageRefused("conflict", "the rules refuse this record now")
        agent = self.directory.by_user(user.id)
        assert agent is not None
        iid = await self._open_attempt(run, rec, m)
        m.interaction_id = iid
        await self.store.log_attempt(run.campaign.id, rec.id, "dialed", agent=m.username, interaction_id=iid)
        await self.voice.dial(agent, rec.phone or "", rec.customer_id, interaction_id=iid)
        self.progress_soon(run)
        return _state(run.campaign.id, "dialing", rec.id, iid)

    async def skip(self, user: WebUser, record_id: int, reason: str) -> dict[str, Any]:
        run, m = self._member(user)
        rec = m.record
        if rec is None or rec.id != record_id or m.interaction_id is not None:
            raise MessageRefused("not_found", "that record is not yours to skip")
        if not reason.strip():
            raise MessageRefused("invalid", "say why you skip it")
        await self.store.log_attempt(
            run.campaign.id, rec.id, SKIPPED, agent=m.username, data={"reason": reason[:200]}
        )
        await self.store.settle(rec.id, status="skipped", last_outcome=SKIPPED, disposition=None)
        m.record, m.state = None, "free"
        self._spawn(self._preview_next(run, m))
        self.progress_soon(run)
        return _state(run.campaign.id, "skipped", rec.id)

    async def disposition(
        self, user: WebUser, record_id: int, code: str, notes: str | None
    ) -> dict[str, Any]:
        """The agent ends the record with one of the campaign's codes; they are free again."""
        run, m = self._member(user)
        rec = m.record
        if rec is None or rec.id != record_id:
            raise MessageRefused("not_found", "that record is not yours")
        if code not in run.campaign.dispositions:
            raise MessageRefused("invalid", f"the campaign's codes are {run.campaign.dispositions}")
        iid = m.interaction_id
        if iid is not None:
            await self.crm.append_event(
                iid,
                "campaign_disposition",
                data={"code": code, "notes": (notes or "")[:2000], "agent": m.username, "record_id": rec.id},
            )
            if run.campaign.mode == "preview":
                await self._end_voice_wrapup(user, m, iid, code)
            else:
                await self._state(iid, "wrapup_done")
        await self.store.settle(
            rec.id, status="done", attempts=rec.attempts + 1, last_outcome=ANSWERED, disposition=code
        )
        now = time.monotonic()
        if run.dialer is not None:  # the handle time (talk and wrap-up) feeds the pacing
            run.dialer.window.handled(now, now - m.since)
        m.record, m.interaction_id, m.state, m.since = None, None, "free", now
        if run.campaign.mode == "preview":
            self._spawn(self._preview_next(run, m))
        elif run.dialer is not None:
            await run.dialer.agent_freed()
        run.wake.set()
        self.progress_soon(run)
        return _state(run.campaign.id, "done", rec.id, iid)

    async def _end_voice_wrapup(self, user: WebUser, m: Member, iid: int, code: str) -> None:
        """Preview calls go through the voice service: the campaign's disposition is their wrap-up
        too (no second form), and the agent stays not ready for inbound (still in the campaign)."""
        call = self.voice.current_for(m.agent_id)
        if call is None or call.interaction_id != iid:
            return
        if call.state != "wrapup":
            raise MessageRefused("conflict", "hang up first")
        await self._state(iid, "wrapup_done", agent_id=user.id)
        await self.crm.append_event(
            iid, "wrapup", data={"disposition": code, "agent": user.username, "campaign": True}
        )
        self.voice.wrapup_done(call)
        self.hub.send(user.id, "wrapup_saved", interaction_id=iid, disposition=code, ticket=None)
        try:
            await self.runner.handle(WrapUpEnded(m.agent_id))
        except RoutingError:
            pass
        try:
            await self.runner.handle(AgentPresence(m.agent_id, Presence.NOT_READY, "campaign"))
        except RoutingError:
            pass
        self.directory.push_state(m.agent_id)

    # ------------------------------------------------------------------ supervisor: progress
    async def progress(self, run: Run) -> dict[str, Any]:
        st = await self.store.stats(run.campaign.id)
        outcomes, records = st["outcomes"], st["records"]
        connected = outcomes.get(ANSWERED, 0)
        abandoned = outcomes.get("abandoned", 0)
        dialed = sum(v for k, v in outcomes.items() if k != SKIPPED)
        answered = connected + abandoned
        cap = run.campaign.abandon_cap_pct
        return {
            "campaign_id": run.campaign.id,
            "name": run.campaign.name,
            "mode": run.campaign.mode,
            "status": run.status,
            "dialed": dialed,
            "connected": connected,
            "abandoned": abandoned,
            "abandon_rate_pct": round(100.0 * abandoned / answered, 2) if answered else 0.0,
            "abandon_cap_pct": cap,
            "outcomes": outcomes,
            "dispositions": st["dispositions"],
            "remaining": records.get("pending", 0) + records.get("active", 0),
            "records": records,
            "agents": {
                "joined": len(run.members),
                "free": sum(1 for m in run.members.values() if m.state == "free"),
            },
            "in_air": run.dialer.in_air if run.dialer is not None else 0,
        }

    def progress_soon(self, run: Run) -> None:
        cid = run.campaign.id
        if not self.watchers.get(cid) or cid in self._pending_progress:
            return
        self._pending_progress.add(cid)

        async def push() -> None:
            await asyncio.sleep(0.05)  # coalesce a burst of changes into one frame
            self._pending_progress.discard(cid)
            frame = await self.progress(run)
            for uid in list(self.watchers.get(cid, ())):
                self.hub.send(uid, "campaign_progress", **frame)

        self._spawn(push())

    async def watch(self, user: WebUser, campaign_id: int) -> dict[str, Any]:
        run = await self.run_of(campaign_id)
        self.watchers.setdefault(campaign_id, set()).add(user.id)
        return {"type": "campaign_progress", **(await self.progress(run))}

    # ------------------------------------------------------------------ console messages
    def handlers(self) -> dict[str, Any]:
        def need_int(msg: dict[str, Any], key: str) -> int:
            v = msg.get(key)
            if not isinstance(v, int) or isinstance(v, bool):
                raise MessageRefused("invalid", f"{key} must be an integer")
            return v

        def supervisor(user: WebUser) -> None:
            if not set(user.roles) & SUPERVISORS:
                raise MessageRefused("forbidden", "supervisors only")

        async def join(user: WebUser, msg: dict[str, Any]) -> Any:
            return await self.join(user, need_int(msg, "campaign_id"))

        async def leave(user: WebUser, msg: dict[str, Any]) -> Any:
            return await self.leave(user)

        async def dial(user: WebUser, msg: dict[str, Any]) -> Any:
            return await self.dial(user, need_int(msg, "record_id"))

        async def skip(user: WebUser, msg: dict[str, Any]) -> Any:
            return await self.skip(user, need_int(msg, "record_id"), str(msg.get("reason") or ""))

        async def dispo(user: WebUser, msg: dict[str, Any]) -> Any:
            notes = msg.get("notes")
            return await self.disposition(
                user,
                need_int(msg, "record_id"),
                str(msg.get("code") or ""),
                notes if isinstance(notes, str) else None,
            )

        async def control(user: WebUser, msg: dict[str, Any]) -> Any:
            supervisor(user)
            camp = await self.control(
                need_int(msg, "campaign_id"), str(msg.get("action") or ""), user.username
            )
            return {"type": "campaign_progress", **(await self.progress(self.runs[camp.id]))}

        async def watch(user: WebUser, msg: dict[str, Any]) -> Any:
            supervisor(user)
            return await self.watch(user, need_int(msg, "campaign_id"))

        return {
            "campaign_join": join,
            "campaign_leave": leave,
            "campaign_dial": dial,
            "campaign_skip": skip,
            "campaign_disposition": dispo,
            "campaign_control": control,
            "campaign_watch": watch,
        }


def install(center: Any, settings: Any = None, **kw: Any) -> CampaignService:
    from callcenter.services.email_campaigns import EmailCampaigns

    svc = CampaignService(center, **kw)
    base = getattr(getattr(settings, "http", None), "public_base_url", None) or "http://localhost:8080"
    svc.email = EmailCampaigns(center, base_url=str(base))
    center.campaigns = svc
    center.console.handlers.update(svc.handlers())
    scaleout = getattr(settings, "scaleout", None)
    if scaleout is not None and scaleout.enabled and settings.redis.url:
        svc.start_adopting()  # the AMI leader dials the running campaigns (docs/deploy.md)
    return svc


def _state(
    campaign_id: int, state: str, record_id: int | None = None, interaction_id: int | None = None
) -> dict[str, Any]:
    return {
        "type": "campaign_state",
        "campaign_id": campaign_id,
        "state": state,
        "record_id": record_id,
        "interaction_id": interaction_id,
    }
