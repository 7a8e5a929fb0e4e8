"""Users (agents, supervisors, admins), teams, passwords (argon2), agent skills and capacities."""
from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from typing import Any

from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from crm_core._base import UNSET, StoreBase
from crm_core.enums import Channel, Role
from crm_core.errors import DuplicateUser, NotFound, ValidationError
from crm_core.models import AgentSkill, Team, User, team_members
from crm_core.normalize import enum_value
from crm_core.types import utcnow

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
_SKILL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_CAPACITY = 100


def clean_username(username: str) -> str:
    u = username.strip().lower() if isinstance(username, str) else ""
    if not _USERNAME.match(u):
        raise ValidationError(
            "username must be 1..64 of a-z 0-9 . _ @ - (starting with a letter or digit)",
            field="username", value=username,
        )
    return u


def check_password(password: str) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValidationError(f"password must be {MIN_PASSWORD}..{MAX_PASSWORD} characters",
                              field="password")
    return password


def clean_roles(roles: str | Iterable[str]) -> list[str]:
    items = [roles] if isinstance(roles, str) else list(roles)
    if not items:
        raise ValidationError("a user needs at least one role", field="roles")
    return sorted({enum_value(Role, r, "role").value for r in items})


def clean_skills(skills: Mapping[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, level in dict(skills).items():
        if not isinstance(name, str) or not _SKILL.match(name):
            raise ValidationError(f"bad skill name {name!r}", field="skills", value=name)
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 10:
            raise ValidationError(f"skill {name}: proficiency must be an integer 1..10",
                                  field="skills", value=level)
        out[name] = level
    return out


def clean_capacities(capacities: Mapping[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for ch, n in dict(capacities).items():
        channel = enum_value(Channel, ch, "capacity channel").value
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_CAPACITY:
            raise ValidationError(f"capacity {ch}: must be an integer 0..{MAX_CAPACITY}",
                                  field="capacities", value=n)
        out[channel] = n
    return out


def user_snapshot(u: User, skills: Mapping[str, int] | None = None,
                  teams: Iterable[str] | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": u.id, "username": u.username, "display_name": u.display_name,
        "roles": list(u.roles), "disabled": u.disabled, "extension": u.extension,
        "device": u.device, "capacities": u.capacities,
    }
    if skills is not None:
        d["skills"] = dict(skills)
    if teams is not None:
        d["teams"] = sorted(teams)
    return d


class UsersMixin(StoreBase):
    _dummy_hash: str | None = None

    async def _teams_by_name(self, s: AsyncSession, names: Iterable[str]) -> list[Team]:
        wanted = sorted(set(names))
        if not wanted:
            return []
        teams = list((await s.execute(select(Team).where(Team.name.in_(wanted)))).scalars())
        found = {t.name for t in teams}
        for n in wanted:
            if n not in found:
                raise NotFound("Team", n)
        return teams

    async def _load_user(self, s: AsyncSession, key: int | str) -> User:
        where = User.id == key if isinstance(key, int) else User.username == clean_username(key)
        u = (await s.execute(
            select(User).where(where)
            .options(selectinload(User.skills), selectinload(User.teams))
        )).scalar_one_or_none()
        if u is None:
            raise NotFound("User", key)
        return u

    async def create_user(
        self,
        username: str,
        password: str,
        roles: str | Iterable[str] = (Role.AGENT.value,),
        *,
        display_name: str | None = None,
        team: str | Iterable[str] | None = None,
        extension: str | None = None,
        device: str | None = None,
        skills: Mapping[str, int] | None = None,
        capacities: Mapping[str, int] | None = None,
        disabled: bool = False,
        actor: str = "system",
    ) -> User:
        """A new user; the password is stored as an argon2 hash. Audited."""
        uname = clean_username(username)
        check_password(password)
        role_list = clean_roles(roles)
        skill_map = clean_skills(skills or {})
        caps = clean_capacities(capacities or {})
        team_names = [] if team is None else [team] if isinstance(team, str) else list(team)
        display = " ".join((display_name or uname).split())[:200]
        if extension is not None and not (isinstance(extension, str) and 0 < len(extension) <= 32):
            raise ValidationError("extension must be 1..32 characters", field="extension")
        pw_hash = self.hasher.hash(password)
        async with self.db.session() as s, s.begin():
            if (await s.execute(select(User.id).where(User.username == uname))).first():
                raise DuplicateUser(f"user {uname!r} already exists")
            if extension is not None and (await s.execute(
                select(User.id).where(User.extension == extension)
            )).first():
                raise DuplicateUser(f"extension {extension!r} is already assigned")
            teams = await self._teams_by_name(s, team_names)
            now = utcnow()
            u = User(
                username=uname, display_name=display, password_hash=pw_hash, roles=role_list,
                disabled=bool(disabled), extension=extension, device=device,
                capacity_voice=caps.get("voice", 1), capacity_chat=caps.get("chat", 0),
                capacity_email=caps.get("email", 0), created_at=now, updated_at=now,
            )
            u.skills = [AgentSkill(skill=k, proficiency=v) for k, v in sorted(skill_map.items())]
            u.teams = teams
            s.add(u)
            try:
                await s.flush()
            except IntegrityError as e:
                raise DuplicateUser(f"user {uname!r} or extension already exists") from e
            self._audit(s, actor, "user.create", "user", u.id, None,
                        user_snapshot(u, skill_map, team_names))
        return u

    async def get_user(self, user: int | str) -> User:
        """By id or username, with skills and teams loaded."""
        async with self.db.session() as s:
            return await self._load_user(s, user)

    async def list_users(
        self, *, role: str | None = None, team: str | None = None, include_disabled: bool = True
    ) -> list[User]:
        async with self.db.session() as s:
            stmt = select(User).options(selectinload(User.skills), selectinload(User.teams))
            if team is not None:
                stmt = stmt.join(team_members, team_members.c.user_id == User.id).join(
                    Team, Team.id == team_members.c.team_id).where(Team.name == team)
            if not include_disabled:
                stmt = stmt.where(User.disabled.is_(False))
            users = list((await s.execute(stmt.order_by(User.username))).scalars())
        if role is not None:
            r = enum_value(Role, role, "role").value
            users = [u for u in users if r in u.roles]
        return users

    async def authenticate(self, username: str, password: str) -> User | None:
        """The user if the password matches and the account is enabled, else None.
        Rehashes the password when the hasher's parameters have changed."""
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        try:
            uname = clean_username(username)
        except ValidationError:
            uname = None
        async with self.db.session() as s, s.begin():
            user = None
            if uname is not None:
                user = (await s.execute(
                    select(User).where(User.username == uname)
                    .options(selectinload(User.skills), selectinload(User.teams))
                )).scalar_one_or_none()
            if user is None:
                # same cost as a real check: no user enumeration by timing
                await asyncio.to_thread(self._burn, password)
                return None
            try:  # argon2 is slow on purpose: off the event loop
                await asyncio.to_thread(self.hasher.verify, user.password_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return None
            if user.disabled:
                return None
            if self.hasher.check_needs_rehash(user.password_hash):
                user.password_hash = self.hasher.hash(password)
            user.last_login_at = utcnow()
        return user

    def _burn(self, password: str) -> None:
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash("not a real password")
        try:
            self.hasher.verify(self._dummy_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            pass

    async def set_password(self, user_id: int, password: str, *, actor: str = "system") -> None:
        check_password(password)
        h = self.hasher.hash(password)
        async with self.db.session() as s, s.begin():
            u = await self._get(s, User, user_id)
            u.password_hash = h
            u.updated_at = utcnow()
            self._audit(s, actor, "user.password", "user", user_id)

    async def set_user_disabled(self, user_id: int, disabled: bool, *, actor: str = "system") -> User:
        async with self.db.session() as s, s.begin():
            u = await self._load_user(s, user_id)
            before = {"disabled": u.disabled}
            u.disabled = bool(disabled)
            u.updated_at = utcnow()
            self._audit(s, actor, "user.disable" if disabled else "user.enable", "user",
                        user_id, before, {"disabled": u.disabled})
        return u

    async def update_user(
        self,
        user_id: int,
        *,
        display_name: str = UNSET,
        roles: str | Iterable[str] = UNSET,
        extension: str | None = UNSET,
        device: str | None = UNSET,
        skills: Mapping[str, int] = UNSET,
        capacities: Mapping[str, int] = UNSET,
        actor: str = "system",
    ) -> User:
        """Change the given fields; `skills` replaces the whole set. Audited."""
        role_list = None if roles is UNSET else clean_roles(roles)
        skill_map = None if skills is UNSET else clean_skills(skills)
        caps = None if capacities is UNSET else clean_capacities(capacities)
        async with self.db.session() as s, s.begin():
            u = await self._load_user(s, user_id)
            before = user_snapshot(u, u.skill_map, [t.name for t in u.teams])
            if display_name is not UNSET:
                u.display_name = " ".join(str(display_name).split())[:200] or u.username
            if role_list is not None:
                u.roles = role_list
            if extension is not UNSET:
                if extension is not None and (await s.execute(
                    select(User.id).where(User.extension == extension, User.id != user_id)
                )).first():
                    raise DuplicateUser(f"extension {extension!r} is already assigned")
                u.extension = extension
            if device is not UNSET:
                u.device = device
            if caps is not None:
                for ch, n in caps.items():
                    setattr(u, f"capacity_{ch}", n)
            if skill_map is not None:
                await s.execute(delete(AgentSkill).where(AgentSkill.user_id == user_id))
                s.add_all(AgentSkill(user_id=user_id, skill=k, proficiency=v)
                          for k, v in skill_map.items())
            u.updated_at = utcnow()
            await s.flush()
            s.expire(u, ["skills"])
            u = await self._load_user(s, user_id)
            self._audit(s, actor, "user.update", "user", user_id, before,
                        user_snapshot(u, u.skill_map, [t.name for t in u.teams]))
        return u

    # ------------------------------------------------------------------ teams
    async def create_team(self, name: str, label: str | None = None, *, actor: str = "system") -> Team:
        if not isinstance(name, str) or not _SKILL.match(name.strip()):
            raise ValidationError("team name must be 1..64 of A-Z a-z 0-9 _ . : -", field="name")
        name = name.strip()
        async with self.db.session() as s, s.begin():
            if (await s.execute(select(Team.id).where(Team.name == name))).first():
                raise DuplicateUser(f"team {name!r} already exists")
            t = Team(name=name, label=label, created_at=utcnow())
            s.add(t)
            await s.flush()
            self._audit(s, actor, "team.create", "team", t.id, None,
                        {"name": name, "label": label})
        return t

    async def list_teams(self) -> list[Team]:
        async with self.db.session() as s:
            return list((await s.execute(
                select(Team).options(selectinload(Team.members)).order_by(Team.name)
            )).scalars())

    async def add_team_member(self, team: str, user_id: int, *, actor: str = "system") -> None:
        async with self.db.session() as s, s.begin():
            (t,) = await self._teams_by_name(s, [team])
            u = await self._load_user(s, user_id)
            if t not in u.teams:
                u.teams.append(t)
                self._audit(s, actor, "team.add_member", "team", t.id, None, {"user_id": user_id})

    async def remove_team_member(self, team: str, user_id: int, *, actor: str = "system") -> None:
        async with self.db.session() as s, s.begin():
            (t,) = await self._teams_by_name(s, [team])
            u = await self._load_user(s, user_id)
            if t in u.teams:
                u.teams.remove(t)
                self._audit(s, actor, "team.remove_member", "team", t.id, {"user_id": user_id})
