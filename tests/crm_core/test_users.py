"""Users, roles, teams, argon2 passwords, agent skills and capacities, audit."""
from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from crm_core.errors import DuplicateUser, NotFound, UnknownValue, ValidationError
from crm_core.models import AgentSkill, AuditEntry, User
from crm_core.store import CrmStore
from tests.crm_core.conftest import FAST_HASHER, count_rows


async def test_create_user_with_agent_settings(store):
    await store.create_team("frontline", "Front line")
    u = await store.create_user(
        "Alice", "s3cret-pass", ["agent", "supervisor"], display_name="Alice A.",
        team="frontline", extension="1001", device="PJSIP/1001",
        skills={"billing": 7, "es": 3}, capacities={"voice": 1, "chat": 3, "email": 5},
        actor="admin",
    )
    assert u.username == "alice" and u.roles == ["agent", "supervisor"]
    assert u.password_hash.startswith("$argon2") and "s3cret" not in u.password_hash
    got = await store.get_user("ALICE")
    assert got.id == u.id and got.skill_map == {"billing": 7, "es": 3}
    assert got.capacities == {"voice": 1, "chat": 3, "email": 5}
    assert [t.name for t in got.teams] == ["frontline"] and got.extension == "1001"
    (entry,) = await store.list_audit(action="user.create")
    assert entry.actor == "admin" and entry.after["username"] == "alice"
    assert entry.after["skills"] == {"billing": 7, "es": 3}
    assert "password" not in str(entry.after).lower()


async def test_authenticate(store):
    u = await store.create_user("bob", "correct horse", "agent")
    assert (await store.authenticate("bob", "correct horse")).id == u.id
    assert (await store.authenticate(" BOB ", "correct horse")).id == u.id
    assert await store.authenticate("bob", "wrong horse") is None
    assert await store.authenticate("nobody", "correct horse") is None
    assert await store.authenticate("", "") is None
    assert await store.authenticate("bad name!", "x") is None
    await store.set_user_disabled(u.id, True, actor="admin")
    assert await store.authenticate("bob", "correct horse") is None
    await store.set_user_disabled(u.id, False, actor="admin")
    await store.set_password(u.id, "battery staple", actor="admin")
    assert await store.authenticate("bob", "correct horse") is None
    assert (await store.authenticate("bob", "battery staple")).last_login_at is not None


async def test_rehash_when_parameters_change(database, store):
    u = await store.create_user("carol", "password-1", "agent")
    stronger = CrmStore(database, password_hasher=PasswordHasher(
        time_cost=2, memory_cost=16, parallelism=1))
    assert stronger.hasher.check_needs_rehash(u.password_hash)
    got = await stronger.authenticate("carol", "password-1")
    assert got is not None and got.password_hash != u.password_hash
    assert not stronger.hasher.check_needs_rehash((await store.get_user(u.id)).password_hash)
    assert (await stronger.authenticate("carol", "password-1")).id == u.id


@pytest.mark.parametrize("kwargs, error", [
    ({"username": "bad name"}, ValidationError),
    ({"password": "short"}, ValidationError),
    ({"roles": ["king"]}, UnknownValue),
    ({"roles": []}, ValidationError),
    ({"skills": {"billing": 11}}, ValidationError),
    ({"skills": {"billing": 0}}, ValidationError),
    ({"capacities": {"fax": 1}}, UnknownValue),
    ({"capacities": {"chat": -1}}, ValidationError),
    ({"team": "nope"}, NotFound),
])
async def test_bad_users_write_nothing(store, database, kwargs, error):
    args = {"username": "dave", "password": "long enough", "roles": "agent", **kwargs}
    with pytest.raises(error):
        await store.create_user(**args)
    assert await count_rows(database, User) == 0
    assert await count_rows(database, AgentSkill) == 0
    assert await count_rows(database, AuditEntry) == 0


async def test_duplicates(store):
    await store.create_user("erin", "password-1", "agent", extension="2001")
    with pytest.raises(DuplicateUser):
        await store.create_user("ERIN", "password-2", "agent")
    with pytest.raises(DuplicateUser):
        await store.create_user("frank", "password-2", "agent", extension="2001")
    await store.create_team("t1")
    with pytest.raises(DuplicateUser):
        await store.create_team("t1")


async def test_list_update_and_teams(store):
    await store.create_team("red")
    await store.create_team("blue")
    a = await store.create_user("agent-a", "password-1", "agent", team="red",
                                skills={"sales": 5})
    b = await store.create_user("agent-b", "password-1", "agent", team=["red", "blue"])
    s = await store.create_user("sup", "password-1", "supervisor")
    assert [u.username for u in await store.list_users(role="agent")] == ["agent-a", "agent-b"]
    assert [u.username for u in await store.list_users(team="blue")] == ["agent-b"]
    await store.set_user_disabled(b.id, True)
    assert [u.username for u in await store.list_users(include_disabled=False)] == [
        "agent-a", "sup"]
    u = await store.update_user(a.id, skills={"support": 9}, capacities={"chat": 4},
                                extension="3001", roles=["agent", "admin"], actor="root")
    assert u.skill_map == {"support": 9} and u.capacities["chat"] == 4
    assert u.roles == ["admin", "agent"] and u.extension == "3001"
    await store.add_team_member("blue", s.id)
    await store.remove_team_member("red", a.id)
    teams = {t.name: [m.username for m in t.members] for t in await store.list_teams()}
    assert teams == {"blue": ["agent-b", "sup"], "red": ["agent-b"]}
    upd = (await store.list_audit(action="user.update"))[0]
    assert upd.before["skills"] == {"sales": 5} and upd.after["skills"] == {"support": 9}


async def test_disposition_codes(store):
    codes = await store.list_disposition_codes()
    assert [c.code for c in codes][:2] == ["resolved", "follow_up"]
    assert await store.seed_disposition_codes() == 0  # idempotent
    await store.upsert_disposition_code("vip_callback", "VIP callback", actor="admin")
    await store.upsert_disposition_code("sale", "Sale!", active=False, actor="admin")
    active = {c.code: c.label for c in await store.list_disposition_codes(active_only=True)}
    assert "sale" not in active and active["vip_callback"] == "VIP callback"
    entries = await store.list_audit(entity="disposition_code")
    assert [e.entity_id for e in entries] == ["sale", "vip_callback"]
    assert entries[0].before["label"] == "Sale made" and entries[0].after["active"] is False
    with pytest.raises(ValidationError):
        await store.upsert_disposition_code("", "x")


def test_fast_hasher_is_only_for_tests():
    assert FAST_HASHER.time_cost == 1
