"""Disposition codes, the audit log, API tokens, queues and skills (administration, audited)."""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column, selectinload

from crm_core._base import StoreBase
from crm_core.catalog import Queue, Skill
from crm_core.errors import NotFound, ValidationError
from crm_core.models import AuditEntry, Base, DispositionCode, Team, User
from crm_core.types import IdType, JSONType, UTCDateTime, utcnow
from crm_core.users import clean_skills

_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

MAX_CODE = 64


class _CodesAndAudit(StoreBase):
    async def list_disposition_codes(self, *, active_only: bool = False) -> list[DispositionCode]:
        async with self.db.session() as s:
            stmt = select(DispositionCode)
            if active_only:
                stmt = stmt.where(DispositionCode.active.is_(True))
            return list((await s.execute(
                stmt.order_by(DispositionCode.position, DispositionCode.code)
            )).scalars())

    async def upsert_disposition_code(
        self,
        code: str,
        label: str,
        *,
        active: bool = True,
        position: int | None = None,
        actor: str = "system",
    ) -> DispositionCode:
        """Create or change a disposition code (codes are never deleted: deactivate them)."""
        if not isinstance(code, str) or not code.strip() or len(code.strip()) > MAX_CODE:
            raise ValidationError(f"code must be 1..{MAX_CODE} characters", field="code")
        if not isinstance(label, str) or not label.strip() or len(label) > 200:
            raise ValidationError("label must be 1..200 characters", field="label")
        code = code.strip()
        async with self.db.session() as s, s.begin():
            dc = await s.get(DispositionCode, code)
            before = None
            if dc is None:
                if position is None:
                    position = int((await s.execute(
                        select(func.coalesce(func.max(DispositionCode.position), -1))
                    )).scalar_one()) + 1
                dc = DispositionCode(code=code, label=label.strip(), active=bool(active),
                                     position=position)
                s.add(dc)
            else:
                before = {"label": dc.label, "active": dc.active, "position": dc.position}
                dc.label = label.strip()
                dc.active = bool(active)
                if position is not None:
                    dc.position = position
            self._audit(s, actor, "disposition.upsert", "disposition_code", code, before,
                        {"label": dc.label, "active": dc.active, "position": dc.position})
        return dc

    async def seed_disposition_codes(self) -> int:
        """Insert the rules' default codes that are missing; returns how many were added."""
        async with self.db.session() as s, s.begin():
            have = set((await s.execute(select(DispositionCode.code))).scalars())
            added = 0
            for pos, (code, label) in enumerate(self.rules.disposition_codes):
                if code not in have:
                    s.add(DispositionCode(code=code, label=label, active=True, position=pos))
                    added += 1
        return added

    async def write_audit(
        self, actor: str, action: str, entity: str, entity_id: Any = None,
        before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
    ) -> AuditEntry:
        async with self.db.session() as s, s.begin():
            return self._audit(s, actor, action, entity, entity_id, before, after)

    async def list_audit(
        self, *, entity: str | None = None, entity_id: Any = None, action: str | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Newest first."""
        async with self.db.session() as s:
            stmt = select(AuditEntry)
            if entity is not None:
                stmt = stmt.where(AuditEntry.entity == entity)
            if entity_id is not None:
                stmt = stmt.where(AuditEntry.entity_id == str(entity_id))
            if action is not None:
                stmt = stmt.where(AuditEntry.action == action)
            return list((await s.execute(
                stmt.order_by(AuditEntry.id.desc()).limit(limit)
            )).scalars())


# --------------------------------------------------------------------------- issue 14: tokens, queues
class ApiToken(Base):
    """A bearer token for the REST API: only its sha256 is stored; `role` is the one role it
    carries (one of its user's roles); revoked tokens stay for the record."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    __table_args__ = (CheckConstraint("role IN ('agent', 'supervisor', 'admin')", name="role"),)


class QueueTeam(Base):
    """Which teams own a queue (a supervisor's scope)."""

    __tablename__ = "queue_teams"

    queue: Mapped[str] = mapped_column(String(64), ForeignKey("queues.name", ondelete="CASCADE"),
                                       primary_key=True)
    team_id: Mapped[int] = mapped_column(IdType, ForeignKey("teams.id", ondelete="CASCADE"),
                                         primary_key=True)


class QueuePolicy(Base):
    """A queue's routing policy beyond its skills: strategy, max_wait, on_timeout, priority,
    sticky_s and escalation steps, in routing/config.py's format (checked by the caller)."""

    __tablename__ = "queue_policies"

    queue: Mapped[str] = mapped_column(String(64), ForeignKey("queues.name", ondelete="CASCADE"),
                                       primary_key=True)
    policy: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class ReasonCode(Base):
    """A not-ready reason code agents pick (none stored: the built-in list)."""

    __tablename__ = "reason_codes"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class IvrFlowVersion(Base):
    """An uploaded IVR flow (YAML that passed the flow checker); one version per name is active."""

    __tablename__ = "ivr_flow_versions"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))

    __table_args__ = (UniqueConstraint("name", "version"),)


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def token_json(t: ApiToken) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "user_id": t.user_id, "role": t.role,
            "created_at": t.created_at, "created_by": t.created_by,
            "last_used_at": t.last_used_at, "revoked_at": t.revoked_at}


def queue_json(q: Queue, teams: list[str], policy: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": q.name, "label": q.label, "skills": dict(q.skills or {}),
            "sl_target_s": q.sl_target_s, "sl_target_pct": q.sl_target_pct, "active": q.active,
            "record": q.record, "teams": sorted(teams), "policy": dict(policy or {})}


class AdminMixin(_CodesAndAudit):
    # ------------------------------------------------------------------ API tokens
    async def create_api_token(self, user_id: int, name: str, role: str, *,
                               actor: str = "system") -> tuple[ApiToken, str]:
        """A new token for `user_id` carrying `role` (which the user must have). Returns the row
        and the secret, shown once."""
        if not isinstance(name, str) or not 0 < len(name.strip()) <= 100:
            raise ValidationError("name must be 1..100 characters", field="name")
        secret = "cct_" + secrets.token_urlsafe(32)
        async with self.db.session() as s, s.begin():
            user = await s.get(User, user_id)
            if user is None:
                raise NotFound("user", user_id)
            if role not in (user.roles or []):
                raise ValidationError(f"user {user.username!r} does not have the role {role!r}",
                                      field="role")
            t = ApiToken(token_hash=token_hash(secret), name=name.strip(), user_id=user_id, role=role,
                         created_at=utcnow(), created_by=actor)
            s.add(t)
            await s.flush()
            self._audit(s, actor, "token.create", "api_token", t.id, None,
                        {"name": t.name, "user_id": user_id, "role": role})
        return t, secret

    async def resolve_api_token(self, secret: str) -> tuple[ApiToken, User] | None:
        """The live token and its enabled user, or None (unknown, revoked, user disabled)."""
        if not isinstance(secret, str) or not 0 < len(secret) <= 256:
            return None
        async with self.db.session() as s, s.begin():
            t = (await s.execute(select(ApiToken).where(
                ApiToken.token_hash == token_hash(secret)))).scalar_one_or_none()
            if t is None or t.revoked_at is not None:
                return None
            user = (await s.execute(select(User).options(selectinload(User.teams)).where(
                User.id == t.user_id))).scalar_one_or_none()
            if user is None or user.disabled or t.role not in (user.roles or []):
                return None
            now = utcnow()
            if t.last_used_at is None or (now - t.last_used_at).total_seconds() > 60:
                t.last_used_at = now
        return t, user

    async def list_api_tokens(self) -> list[ApiToken]:
        async with self.db.session() as s:
            return list((await s.execute(select(ApiToken).order_by(ApiToken.id))).scalars())

    async def revoke_api_token(self, token_id: int, *, actor: str = "system") -> ApiToken:
        async with self.db.session() as s, s.begin():
            t = await s.get(ApiToken, token_id)
            if t is None:
                raise NotFound("token", token_id)
            if t.revoked_at is None:
                t.revoked_at = utcnow()
                self._audit(s, actor, "token.revoke", "api_token", t.id, {"revoked_at": None},
                            {"revoked_at": t.revoked_at})
        return t

    # ------------------------------------------------------------------ queues and skills
    async def queue_teams(self) -> dict[str, list[str]]:
        async with self.db.session() as s:
            rows = (await s.execute(select(QueueTeam.queue, Team.name).join(
                Team, Team.id == QueueTeam.team_id))).all()
        out: dict[str, list[str]] = {}
        for q, t in rows:
            out.setdefault(q, []).append(t)
        return out

    async def upsert_queue(self, name: str, *, label: str | None = None,
                           skills: dict[str, int] | None = None, sl_target_s: int | None = None,
                           sl_target_pct: int | None = None, active: bool | None = None,
                           record: bool | None = None, teams: list[str] | None = None,
                           policy: dict[str, Any] | None = None,
                           actor: str = "system") -> dict[str, Any]:
        """Create or change a queue (and the teams owning it). Audited with before and after."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValidationError("queue name must be 1..64 of A-Z a-z 0-9 _ . : -", field="name")
        if skills is not None:
            skills = clean_skills(skills)
        for field, v, lo, hi in (("sl_target_s", sl_target_s, 1, 86400),
                                 ("sl_target_pct", sl_target_pct, 1, 100)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi):
                raise ValidationError(f"{field} must be {lo}..{hi}", field=field)
        async with self.db.session() as s, s.begin():
            q = await s.get(Queue, name)
            current = await self._teams_of_queue(s, name)
            pol = await s.get(QueuePolicy, name)
            before = None if q is None else queue_json(q, current, pol.policy if pol else None)
            if q is None:
                q = Queue(name=name, label=label or name, skills=skills or {}, sl_target_s=sl_target_s or 20,
                          sl_target_pct=sl_target_pct or 80, active=True if active is None else active,
                          record=bool(record), created_at=utcnow())
                s.add(q)
            else:
                for attr, v in (("label", label), ("skills", skills), ("sl_target_s", sl_target_s),
                                ("sl_target_pct", sl_target_pct), ("active", active), ("record", record)):
                    if v is not None:
                        setattr(q, attr, v)
            await s.flush()
            if teams is not None:
                found = {t.name: t.id for t in (await s.execute(
                    select(Team).where(Team.name.in_(teams)))).scalars()}
                missing = sorted(set(teams) - set(found))
                if missing:
                    raise NotFound("team", missing[0])
                await s.execute(delete(QueueTeam).where(QueueTeam.queue == name))
                for tid in found.values():
                    s.add(QueueTeam(queue=name, team_id=tid))
                current = sorted(found)
            if policy is not None:
                if pol is None:
                    pol = QueuePolicy(queue=name, policy=dict(policy))
                    s.add(pol)
                else:
                    pol.policy = dict(policy)
            after = queue_json(q, current, pol.policy if pol else None)
            self._audit(s, actor, "queue.create" if before is None else "queue.update", "queue", name,
                        before, after)
        return after

    async def queue_policies(self) -> dict[str, dict[str, Any]]:
        async with self.db.session() as s:
            return {p.queue: dict(p.policy or {}) for p in (await s.execute(select(QueuePolicy))).scalars()}

    @staticmethod
    async def _teams_of_queue(s: Any, name: str) -> list[str]:
        return list((await s.execute(select(Team.name).join(QueueTeam, QueueTeam.team_id == Team.id)
                                     .where(QueueTeam.queue == name))).scalars())

    async def upsert_skill(self, name: str, label: str | None = None, *, active: bool | None = None,
                           actor: str = "system") -> Skill:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValidationError("skill name must be 1..64 of A-Z a-z 0-9 _ . : -", field="name")
        async with self.db.session() as s, s.begin():
            sk = await s.get(Skill, name)
            before = None if sk is None else {"label": sk.label, "active": sk.active}
            if sk is None:
                sk = Skill(name=name, label=label or name, active=True if active is None else active)
                s.add(sk)
            else:
                if label is not None:
                    sk.label = label
                if active is not None:
                    sk.active = active
            self._audit(s, actor, "skill.create" if before is None else "skill.update", "skill", name,
                        before, {"label": sk.label, "active": sk.active})
        return sk

    # ------------------------------------------------------------------ IVR flow versions
    async def add_flow_version(self, name: str, text: str, *, actor: str = "system") -> IvrFlowVersion:
        """Store a checked flow as the next version of `name` (not active yet). Audited."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValidationError("flow name must be 1..64 of A-Z a-z 0-9 _ . : -", field="name")
        async with self.db.session() as s, s.begin():
            last = (await s.execute(select(func.max(IvrFlowVersion.version)).where(
                IvrFlowVersion.name == name))).scalar_one_or_none() or 0
            v = IvrFlowVersion(name=name, version=last + 1, text=text, active=False, created_at=utcnow(),
                               created_by=actor)
            s.add(v)
            await s.flush()
            self._audit(s, actor, "ivr.upload", "ivr_flow", f"{name}@{v.version}", None,
                        {"name": name, "version": v.version, "bytes": len(text.encode())})
        return v

    async def flow_versions(self, name: str | None = None) -> list[IvrFlowVersion]:
        async with self.db.session() as s:
            stmt = select(IvrFlowVersion)
            if name is not None:
                stmt = stmt.where(IvrFlowVersion.name == name)
            return list((await s.execute(stmt.order_by(IvrFlowVersion.name, IvrFlowVersion.version)))
                        .scalars())

    async def flow_version(self, name: str, version: int | None = None) -> IvrFlowVersion | None:
        """One version, or (version None) the active one."""
        async with self.db.session() as s:
            stmt = select(IvrFlowVersion).where(IvrFlowVersion.name == name)
            stmt = stmt.where(IvrFlowVersion.active.is_(True)) if version is None else stmt.where(
                IvrFlowVersion.version == version)
            return (await s.execute(stmt)).scalar_one_or_none()

    async def activate_flow_version(self, name: str, version: int, *,
                                    actor: str = "system") -> IvrFlowVersion:
        """Make `version` the active one (also a roll-back to an earlier version). Audited."""
        async with self.db.session() as s, s.begin():
            v = (await s.execute(select(IvrFlowVersion).where(
                IvrFlowVersion.name == name, IvrFlowVersion.version == version))).scalar_one_or_none()
            if v is None:
                raise NotFound("flow version", f"{name}@{version}")
            was = (await s.execute(select(IvrFlowVersion.version).where(
                IvrFlowVersion.name == name, IvrFlowVersion.active.is_(True)))).scalar_one_or_none()
            await s.execute(update(IvrFlowVersion).where(IvrFlowVersion.name == name).values(active=False))
            v.active = True
            self._audit(s, actor, "ivr.activate", "ivr_flow", name, {"version": was}, {"version": version})
        return v

    # ------------------------------------------------------------------ not-ready reason codes
    async def list_reason_codes(self) -> list[ReasonCode]:
        async with self.db.session() as s:
            return list((await s.execute(select(ReasonCode).order_by(ReasonCode.position, ReasonCode.code)))
                        .scalars())

    async def upsert_reason_code(self, code: str, label: str, *, active: bool = True,
                                 position: int | None = None, actor: str = "system") -> ReasonCode:
        if not isinstance(code, str) or not _NAME.match(code):
            raise ValidationError("code must be 1..64 of A-Z a-z 0-9 _ . : -", field="code")
        if not isinstance(label, str) or not label.strip() or len(label) > 200:
            raise ValidationError("label must be 1..200 characters", field="label")
        async with self.db.session() as s, s.begin():
            rc = await s.get(ReasonCode, code)
            before = None if rc is None else {"label": rc.label, "active": rc.active, "position": rc.position}
            if rc is None:
                if position is None:
                    position = int((await s.execute(
                        select(func.coalesce(func.max(ReasonCode.position), -1)))).scalar_one()) + 1
                rc = ReasonCode(code=code, label=label.strip(), active=bool(active), position=position)
                s.add(rc)
            else:
                rc.label, rc.active = label.strip(), bool(active)
                if position is not None:
                    rc.position = position
            self._audit(s, actor, "reason_code.upsert", "reason_code", code, before,
                        {"label": rc.label, "active": rc.active, "position": rc.position})
        return rc
