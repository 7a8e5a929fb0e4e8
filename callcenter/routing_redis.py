"""The routing engine's store in Redis: several processes route from one shared state.

:class:`RedisStore` implements :class:`routing.store.RoutingStore`. Every method is one atomic
step: one Lua script (loaded once, called with EVALSHA, reloaded after ``NOSCRIPT``) or one read
command. There is no WATCH/MULTI and no read-then-write across round trips; ``claim`` checks the
contact (WAITING), the agent (READY) and capacity/mixing (``routing.model.can_take``, mirrored in
Lua), claims both and takes a lease, in one script.

Keys (``P`` = the prefix, ``T`` = the center's hash tag, by default the prefix without its
trailing ``:``; every key of a center is ``P{T}:...``, so all of them hash to one Cluster slot and
a script may touch several):

==========================  ===================================================================
``P{T}:ags``                set of agent ids
``P{T}:a:<agent>``          hash: ``p`` profile JSON, ``sk`` skills, ``cap`` capacity JSON, ``pr``
                            presence, ``rs`` reason, ``ps`` presence_since, ``wu`` wrap-up end,
                            ``id`` idle_since, ``l:<channel>`` load, ``s:<contact>`` slot
                            ``channel|state``, ``ix`` availability bits
``P{T}:av:<ch>:<skill>``    set: the availability index (skill ``""`` = every agent)
``P{T}:c:<contact>``        hash: ``cj`` contact JSON, ``ej`` engine-owned fields JSON, ``st``
                            status, ``ag`` agent, ``b`` bucket, ``k``/``ns`` key and -key,
                            ``sq`` seq, ``m`` zset member, ``in`` linked in its bucket, ``lu`` lease
``P{T}:q:<bucket>``         zset of waiting contacts: score ``-key``, member ``%012d(seq):id``
                            (equal keys: first come first served); picking the best is a range read
``P{T}:nw``                 number of waiting contacts
``P{T}:seq``                arrival counter
``P{T}:bl`` / ``P{T}:bs``   registered buckets: list (creation order) and set
``P{T}:tm`` / ``P{T}:tn``   timers: zset ``kind|subject`` by due, hash member -> insertion order
``P{T}:ls``                 leases: zset contact -> ``lease_until`` of an OFFERED contact
``P{T}:rr``                 hash queue -> round-robin pointer
==========================  ===================================================================

Leases. ``claim`` records the offer's ``lease_until`` in ``ls``; ``accept``, ``requeue``,
``close`` and ``forget`` drop it. The engine also sets a RING timer at ``lease_until``. A process
that dies after claiming (before or after setting that timer, or after popping it) leaves an
OFFERED contact and a RESERVED slot behind. ``pop_due`` (run by every process's ``tick``) first
reclaims, in the same script, every lease older than ``lease_until + grace_s``: it re-arms the
contact's RING timer (due at the old ``lease_until``) and pushes the lease ``grace_s`` further, so
the engine handles it as a ring-no-answer: the contact goes back to its bucket with its key and
seq (its place) and is offered again, and the slot is freed. If that process dies too, the lease
expires again. Nothing is lost.

All processes sharing a prefix must use one time base (wall-clock seconds), since leases and
timers are compared across processes.

Threads. The routing runner (services/routing_runner.py) runs engine steps in a worker thread
inside :meth:`RedisStore.stepping`. While a step runs, a read from another thread (the event
loop: an agent's state for a console, a contact for a supervisor) is a *view*: it never sends the
step's pending save, never uses the step's pool snapshot and never updates the records the engine
holds (it did, and an engine step could see its own record changed under it). Callers on the event
loop that read many agents or contacts use the batch reads (``capacity``, ``waiting_queues``) or
their ``a``-prefixed asyncio forms, which never block the loop.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from routing.events import Timer, TimerKind
from routing.model import (
    CHANNELS,
    DEFAULT_MIXING,
    TERMINAL,
    AgentProfile,
    Channel,
    Contact,
    ContactStatus,
    MixingRules,
    Presence,
    Requirement,
    SlotState,
    Tier,
)
from routing.store import AgentRecord, ContactRecord

__all__ = ["RedisStore", "RoutingStoreUnavailable", "connect"]

T = TypeVar("T")


class RoutingStoreUnavailable(ConnectionError):
    """Redis cannot be reached (after the client's retries). The step that failed was not applied
    (a Lua script applies fully or not at all); the caller may retry the whole event later.

    Deliberately not a :class:`routing.errors.RoutingError`: it is not bad input, and callers that
    drop stale events must not drop this one silently."""


_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def connect(url: str, *, retries: int = 3, socket_timeout: float = 2.0) -> redis.Redis:
    """A synchronous client with retries and exponential backoff on connection errors."""
    return redis.Redis.from_url(
        url, decode_responses=True, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.01), retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError], health_check_interval=30,
    )


# -- Lua -----------------------------------------------------------------------------------------

_PRELUDE = r"""
local CH = {'voice', 'chat', 'email'}
local function can_take(load, ch, rules, cap)
  local c = (cap or rules.cap)[ch] or 0
  if (load[ch] or 0) >= c then return false end
  local bl = rules.blocked[ch]
  if bl then
    for _, o in ipairs(bl) do if (load[o] or 0) > 0 then return false end end
  end
  if rules.max >= 0 then
    local s = 0
    for _, x in ipairs(CH) do s = s + (load[x] or 0) end
    if s >= rules.max then return false end
  end
  return true
end
local function reindex(base, aid, ah, rules)
  local f = redis.call('HMGET', ah, 'pr', 'l:voice', 'l:chat', 'l:email', 'cap', 'sk', 'ix')
  local ready = f[1] == 'ready'
  local load = {voice = tonumber(f[2]) or 0, chat = tonumber(f[3]) or 0, email = tonumber(f[4]) or 0}
  local cap = nil
  if f[5] and f[5] ~= '' then cap = cjson.decode(f[5]) end
  local was = tonumber(f[7]) or 0
  local now = 0
  for i, ch in ipairs(CH) do
    if ready and can_take(load, ch, rules, cap) then now = now + 2 ^ (i - 1) end
  end
  if now == was then return end
  if f[1] then redis.call('HSET', ah, 'ix', now) end
  local skills = {''}
  for s in string.gmatch(f[6] or '', '[^,]+') do skills[#skills + 1] = s end
  for i, ch in ipairs(CH) do
    local bit = 2 ^ (i - 1)
    local a = math.floor(was / bit) % 2
    local b = math.floor(now / bit) % 2
    if a ~= b then
      for _, s in ipairs(skills) do
        local k = base .. 'av:' .. ch .. ':' .. s
        if b == 1 then redis.call('SADD', k, aid) else redis.call('SREM', k, aid) end
      end
    end
  end
end
local function unlink(base, ck, nwk)
  local f = redis.call('HMGET', ck, 'in', 'b', 'm')
  if f[1] == '1' then
    redis.call('ZREM', base .. 'q:' .. f[2], f[3])
    redis.call('HSET', ck, 'in', '0')
    redis.call('DECR', nwk)
  end
end
local function link(base, ck, nwk)
  local f = redis.call('HMGET', ck, 'b', 'ns', 'm')
  redis.call('ZADD', base .. 'q:' .. f[1], f[2], f[3])
  redis.call('HSET', ck, 'in', '1')
  redis.call('INCR', nwk)
end
local function bump(base, ah)
  redis.call('HSET', ah, 'v', redis.call('INCR', base .. 'av'))
end
local function free_slot(base, aid, cid, rules)
  local ah = base .. 'a:' .. aid
  if redis.call('EXISTS', ah) == 0 then return false end
  local slot = redis.call('HGET', ah, 's:' .. cid)
  if slot then
    local ch = string.match(slot, '^([^|]+)')
    redis.call('HDEL', ah, 's:' .. cid)
    redis.call('HINCRBY', ah, 'l:' .. ch, -1)
    reindex(base, aid, ah, rules)
    bump(base, ah)
  end
  return true
end
local function opt(v) if v == '' then return nil end return string.sub(v, 2) end
local CONTACT_TIMERS = {'ring', 'escalate', 'max-wait', 'sticky', 'retry'}
local function drop_timers(tm, tn, cid)
  for _, kind in ipairs(CONTACT_TIMERS) do
    local m = kind .. '|' .. cid
    redis.call('ZREM', tm, m)
    redis.call('HDEL', tn, m)
  end
end
"""

# KEYS: agent hash, agents set. ARGV: aid, profile json, skills csv, capacity json or '', now, base
_ADD_AGENT = r"""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'p', ARGV[2], 'sk', ARGV[3], 'cap', ARGV[4], 'pr', 'offline',
  'ps', ARGV[5], 'id', ARGV[5], 'l:voice', 0, 'l:chat', 0, 'l:email', 0, 'ix', 0)
bump(ARGV[6], KEYS[1])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""

# KEYS: agent hash, agents set. ARGV: base, aid, rules
_REMOVE_AGENT = r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local l = redis.call('HMGET', KEYS[1], 'l:voice', 'l:chat', 'l:email')
for _, v in ipairs(l) do if (tonumber(v) or 0) > 0 then return 0 end end
local rules = cjson.decode(ARGV[3])
redis.call('HSET', KEYS[1], 'pr', 'offline')
reindex(ARGV[1], ARGV[2], KEYS[1], rules)
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"""

# KEYS: agent hash. ARGV: base, aid, presence, reason (opt), now, wrap_up_until (opt), rules
_SET_PRESENCE = r"""
local pr = redis.call('HGET', KEYS[1], 'pr')
if not pr then return redis.error_reply('NOAGENT ' .. ARGV[2]) end
if ARGV[3] == 'ready' and pr ~= 'ready' then redis.call('HSET', KEYS[1], 'id', ARGV[5]) end
if ARGV[3] ~= pr then redis.call('HSET', KEYS[1], 'ps', ARGV[5]) end
redis.call('HSET', KEYS[1], 'pr', ARGV[3], 'rs', ARGV[4], 'wu', ARGV[6])
reindex(ARGV[1], ARGV[2], KEYS[1], cjson.decode(ARGV[7]))
bump(ARGV[1], KEYS[1])
return 1
"""

# KEYS: contact hash, seq counter. ARGV: cid, cj, ej, status, agent (opt), bucket, key, -key
_ADD_CONTACT = r"""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local seq = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'cj', ARGV[2], 'ej', ARGV[3], 'st', ARGV[4], 'ag', ARGV[5],
  'b', ARGV[6], 'k', ARGV[7], 'ns', ARGV[8], 'sq', seq, 'm', string.format('%012d', seq) .. ':' .. ARGV[1],
  'in', '0')
return seq
"""

# KEYS: contact hash. ARGV: ej
_SAVE_CONTACT = r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'ej', ARGV[1])
return 1
"""

# KEYS: contact hash, waiting counter. ARGV: base, bucket, key, -key, engine fields json ('' = unchanged)
_ENQUEUE = r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NOCONTACT') end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'ej', ARGV[5]) end
unlink(ARGV[1], KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'b', ARGV[2], 'k', ARGV[3], 'ns', ARGV[4], 'st', 'waiting', 'ag', '')
link(ARGV[1], KEYS[1], KEYS[2])
return 1
"""

# KEYS: bucket set, bucket list. ARGV: bucket
_REGISTER_BUCKET = r"""
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then redis.call('RPUSH', KEYS[2], ARGV[1]) end
return 1
"""

# The claim: check, claim and lease in one step.
# The RING timer of the offer is set in the same step (due at lease_until).
# KEYS: contact hash, agent hash, leases, waiting counter, timers, timer order, timer counter.
# ARGV: base, cid, aid, channel, lease_until, rules
_CLAIM = r"""
local c = redis.call('HGET', KEYS[1], 'st')
if c ~= 'waiting' then return 0 end
local f = redis.call('HMGET', KEYS[2], 'pr', 'l:voice', 'l:chat', 'l:email', 'cap')
if f[1] ~= 'ready' then return 0 end
local rules = cjson.decode(ARGV[6])
local load = {voice = tonumber(f[2]) or 0, chat = tonumber(f[3]) or 0, email = tonumber(f[4]) or 0}
local cap = nil
if f[5] and f[5] ~= '' then cap = cjson.decode(f[5]) end
if not can_take(load, ARGV[4], rules, cap) then return 0 end
unlink(ARGV[1], KEYS[1], KEYS[4])
redis.call('HSET', KEYS[1], 'st', 'offered', 'ag', ARGV[3], 'lu', ARGV[5])
redis.call('HSET', KEYS[2], 's:' .. ARGV[2], ARGV[4] .. '|reserved')
redis.call('HINCRBY', KEYS[2], 'l:' .. ARGV[4], 1)
reindex(ARGV[1], ARGV[3], KEYS[2], rules)
bump(ARGV[1], KEYS[2])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[5], 'ring|' .. ARGV[2])
redis.call('HSET', KEYS[6], 'ring|' .. ARGV[2], redis.call('INCR', KEYS[7]))
return 1
"""

# KEYS: contact hash, agent hash, leases, timers, timer order. ARGV: cid, aid, base
_ACCEPT = r"""
local f = redis.call('HMGET', KEYS[1], 'st', 'ag')
if f[1] ~= 'offered' or f[2] ~= ARGV[2] then return 0 end
local slot = redis.call('HGET', KEYS[2], 's:' .. ARGV[1])
if not slot then return 0 end
local ch = string.match(slot, '^([^|]+)')
redis.call('HSET', KEYS[2], 's:' .. ARGV[1], ch .. '|busy')
bump(ARGV[3], KEYS[2])
redis.call('HSET', KEYS[1], 'st', 'connected')
redis.call('ZREM', KEYS[3], ARGV[1])
drop_timers(KEYS[4], KEYS[5], ARGV[1])
return 1
"""

# KEYS: contact hash, leases, waiting counter. ARGV: base, cid, aid, rules
_REQUEUE = r"""
local f = redis.call('HMGET', KEYS[1], 'st', 'ag')
if f[1] ~= 'offered' or f[2] ~= ARGV[3] then return 0 end
free_slot(ARGV[1], ARGV[3], ARGV[2], cjson.decode(ARGV[4]))
redis.call('HSET', KEYS[1], 'st', 'waiting', 'ag', '')
link(ARGV[1], KEYS[1], KEYS[3])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""

# KEYS: contact hash, leases, waiting counter, timers, timer order. ARGV: base, cid, outcome, now, rules
_CLOSE = r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NOCONTACT') end
unlink(ARGV[1], KEYS[1], KEYS[3])
local ag = redis.call('HGET', KEYS[1], 'ag')
if ag and ag ~= '' then
  if free_slot(ARGV[1], ag, ARGV[2], cjson.decode(ARGV[5])) and ARGV[3] == 'handled' then
    local ah = ARGV[1] .. 'a:' .. ag
    local l = redis.call('HMGET', ah, 'l:voice', 'l:chat', 'l:email')
    local n = 0
    for _, v in ipairs(l) do n = n + (tonumber(v) or 0) end
    if n == 0 then
      redis.call('HSET', ah, 'id', ARGV[4])
      bump(ARGV[1], ah)
    end
  end
else
  ag = false
end
redis.call('HSET', KEYS[1], 'st', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[2])
drop_timers(KEYS[4], KEYS[5], ARGV[2])
return ag
"""

# KEYS: contact hash, leases, waiting counter. ARGV: base, cid
_FORGET = r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
unlink(ARGV[1], KEYS[1], KEYS[3])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""

# KEYS: timers, timer order, timer counter. ARGV: member, due
_SET_TIMER = r"""
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], redis.call('INCR', KEYS[3]))
return 1
"""

# KEYS: timers, timer order. ARGV: member
_CANCEL_TIMER = r"""
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

# Reclaim expired leases: an OFFERED contact whose lease ran out (its process died) gets its RING
# timer re-armed, so the engine treats it as a ring-no-answer; the lease is pushed further.
# KEYS: timers, timer order, timer counter, leases. ARGV: base, now, cutoff (now - grace), rearm (now + grace)
_RECLAIM_FN = r"""
local function reclaim()
  local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[3], 'WITHSCORES')
  local out = {}
  for i = 1, #expired, 2 do
    local cid, lu = expired[i], expired[i + 1]
    local st = redis.call('HGET', ARGV[1] .. 'c:' .. cid, 'st')
    if st ~= 'offered' then
      redis.call('ZREM', KEYS[4], cid)
    else
      local m = 'ring|' .. cid
      if redis.call('ZADD', KEYS[1], 'NX', lu, m) == 1 then
        redis.call('HSET', KEYS[2], m, redis.call('INCR', KEYS[3]))
      end
      redis.call('ZADD', KEYS[4], ARGV[4], cid)
      out[#out + 1] = cid
    end
  end
  return out
end
"""

# Reclaim, then pop due timers (earliest first, ties in setting order). Same KEYS and ARGV.
_POP_DUE = _RECLAIM_FN + r"""
reclaim()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'WITHSCORES')
if #due == 0 then return {} end
local rows = {}
for i = 1, #due, 2 do
  local order = tonumber(redis.call('HGET', KEYS[2], due[i])) or 0
  rows[#rows + 1] = {due[i], due[i + 1], tonumber(due[i + 1]), order}
end
table.sort(rows, function(a, b) if a[3] ~= b[3] then return a[3] < b[3] end return a[4] < b[4] end)
local out = {}
for _, r in ipairs(rows) do
  redis.call('ZREM', KEYS[1], r[1])
  redis.call('HDEL', KEYS[2], r[1])
  out[#out + 1] = r[1]
  out[#out + 1] = r[2]
end
return out
"""

# Reclaim only (for tools and tests). Returns the contact ids.
_RECLAIM = _RECLAIM_FN + r"""
return reclaim()
"""


# The availability set with its members' records, in one step (read only).
# Every agent hash carries `v`, the center's change counter (`av`) at its last change (bump()):
# a member unchanged since `since` (the counter at the caller's previous read) comes as
# 'aid<US>v' only, and the caller uses its copy of that version (or reads it, without one).
# KEYS: availability set. ARGV: base, since. Returns the counter now, then one row per agent, as
# one string (rows joined by <RS>: one reply to parse, not one per agent).
_POOL = r"""
local ids = redis.call('SMEMBERS', KEYS[1])
local out = {redis.call('GET', ARGV[1] .. 'av') or '0'}
local since = tonumber(ARGV[2])
for _, aid in ipairs(ids) do
  local ah = ARGV[1] .. 'a:' .. aid
  local v = redis.call('HGET', ah, 'v') or '-1'
  local n = tonumber(v) or -1
  if n >= 0 and n <= since then
    out[#out + 1] = aid .. '\31' .. v
  else
    local fields = table.concat(redis.call('HGETALL', ah), '\31')
    if string.find(fields, '\30', 1, true) then fields = '!' end  -- read on its own
    out[#out + 1] = aid .. '\31' .. v .. '\31' .. fields
  end
end
return table.concat(out, '\30')
"""


# The capacity of a channel over some agents: the sum of their profile's capacity for it, over
# those signed in (not offline, not not-ready); stops once `enough` is reached (-1: never).
# KEYS: none (one slot: every key is under the base). ARGV: base, channel, enough, agent ids...
_CAPACITY = r"""
local total, enough = 0, tonumber(ARGV[3])
for i = 4, #ARGV do
  local f = redis.call('HMGET', ARGV[1] .. 'a:' .. ARGV[i], 'pr', 'cap')
  if f[1] and f[1] ~= 'offline' and f[1] ~= 'not-ready' and f[2] and f[2] ~= '' then
    total = total + (tonumber(cjson.decode(f[2])[ARGV[2]]) or 0)
    if enough >= 0 and total >= enough then return total end
  end
end
return total
"""

# Every registered bucket's first `limit` waiting contacts with their queue, in bucket order then
# best first: contact, score (-key), queue (or the engine JSON when the queue is not plain).
# KEYS: bucket list. ARGV: base, limit
_WAITING = r"""
local out = {}
for _, b in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local rows = redis.call('ZRANGE', ARGV[1] .. 'q:' .. b, 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
  for i = 1, #rows, 2 do
    local cid = string.sub(rows[i], 14)
    local ej = redis.call('HGET', ARGV[1] .. 'c:' .. cid, 'ej') or ''
    out[#out + 1] = cid
    out[#out + 1] = rows[i + 1]
    out[#out + 1] = string.match(ej, '^{"q":"([^"\\]*)","eq":') or ej
  end
end
return out
"""


class _Script:
    """A Lua script loaded once and called with EVALSHA; reloaded after NOSCRIPT (a restarted or
    flushed server)."""

    def __init__(self, body: str) -> None:
        self.source = _PRELUDE + body
        import hashlib

        self.sha = hashlib.sha1(self.source.encode()).hexdigest()
        self.loaded_on: set[int] = set()

    def __call__(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)

    async def acall(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """The same on a redis.asyncio client."""
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)


def _waiting_rows(flat: Sequence[str]) -> list[tuple[str, float, str]]:
    """_WAITING's reply as (contact, key, queue), best first (in Engine.waiting's order)."""
    rows = []
    for i in range(0, len(flat), 3):
        q = flat[i + 2]
        if q.startswith("{"):
            q = json.loads(q)["q"]
        rows.append((flat[i], -float(flat[i + 1]), q))
    rows.sort(key=lambda r: -r[1])
    return rows


def _rules_json(rules: MixingRules) -> str:
    return json.dumps({
        "cap": {ch.value: int(rules.capacity.get(ch, 0)) for ch in CHANNELS},
        "blocked": {ch.value: [o.value for o in rules.blocked_by.get(ch, ())] for ch in CHANNELS
                    if rules.blocked_by.get(ch)},
        "max": -1 if rules.max_total is None else int(rules.max_total),
    }, separators=(",", ":"))


def _opt(v: object | None) -> str:
    """Optional value for Lua: '' for None, '=' + text otherwise."""
    return "" if v is None else "=" + (repr(v) if isinstance(v, float) else str(v))


def _unopt(v: str | None) -> str | None:
    return None if not v else v[1:]


def _profile_json(p: AgentProfile) -> str:
    return json.dumps({
        "id": p.id, "skills": dict(p.skills), "languages": sorted(p.languages), "team": p.team,
        "capacity": None if p.capacity is None else {Channel(k).value: v for k, v in p.capacity.items()},
    }, separators=(",", ":"))


def _profile_from(s: str) -> AgentProfile:
    d = json.loads(s)
    cap = d["capacity"]
    return AgentProfile(
        d["id"], d["skills"], languages=frozenset(d["languages"]), team=d["team"],
        capacity=None if cap is None else {Channel(k): v for k, v in cap.items()},
    )


def _contact_json(c: Contact) -> str:
    return json.dumps({
        "id": c.id, "ch": c.channel.value, "q": c.queue, "at": c.arrived_at, "cu": c.customer_id,
        "t": c.tier.value, "sk": dict(c.skills), "la": c.language, "pa": c.preferred_agent,
        "ss": c.sticky_s, "pr": c.priority,
    }, separators=(",", ":"))


def _contact_from(s: str) -> Contact:
    d = json.loads(s)
    return Contact(d["id"], Channel(d["ch"]), d["q"], d["at"], customer_id=d["cu"], tier=Tier(d["t"]),
                   skills=d["sk"], language=d["la"], preferred_agent=d["pa"], sticky_s=d["ss"],
                   priority=d["pr"])


def _engine_json(r: ContactRecord) -> str:
    return json.dumps({
        "q": r.queue, "eq": r.entered_queue_at, "w": r.weight,
        "r": [[list(p) for p in alt] for alt in r.requirement.alternatives],
        "sp": r.step, "bo": r.boost, "wd": r.widened, "dc": r.declined, "su": r.sticky_until,
        "cb": r.callback_offered,
    }, separators=(",", ":"))


def _apply_engine_json(r: ContactRecord, s: str) -> None:
    d = json.loads(s)
    r.queue = d["q"]
    r.entered_queue_at = d["eq"]
    r.weight = d["w"]
    r.requirement = Requirement(tuple(tuple((n, lv) for n, lv in alt) for alt in d["r"]))
    r.step = d["sp"]
    r.boost = d["bo"]
    r.widened = d["wd"]
    r.declined = d["dc"]
    r.sticky_until = d["su"]
    r.callback_offered = d["cb"]


class _Avail(frozenset[str]):
    """An availability set read together with its agents' records (one step). While the engine
    walks it, ``agent()`` answers from those records: the engine reads every agent of the pool it
    walks, and one round trip per agent would dominate."""

    _store: RedisStore
    _snap: dict[str, AgentRecord]

    def __iter__(self) -> Iterator[str]:
        store = self._store
        if store._foreign():  # not the engine step's thread: no snapshot for agent()
            yield from frozenset.__iter__(self)
            return
        outer = store._in_pool
        store._in_pool = self
        try:
            yield from frozenset.__iter__(self)
        finally:
            store._in_pool = outer


_SLOT_STATES = {s.value: s for s in SlotState}
_PRESENCES = {p.value: p for p in Presence}
_STATUSES = {s.value: s for s in ContactStatus}
_TIMER_KINDS = {k.value: k for k in TimerKind}
_CONTACT_TIMER_KINDS = (
    TimerKind.RING, TimerKind.ESCALATE, TimerKind.MAX_WAIT, TimerKind.STICKY, TimerKind.RETRY)


class RedisStore:
    """:class:`routing.store.RoutingStore` on Redis (redis-py's synchronous client).

    ``available()`` reads the set and its agents' records in one step; while the engine walks
    that set, ``agent()`` answers from those records (as fresh as any read; ``claim`` re-checks
    everything in Lua). Every other read is one round trip.
    ``lease_grace_s``: how long after ``lease_until`` an OFFERED contact is reclaimed (its RING
    timer, normally due at ``lease_until``, gets that long to fire in a live process first).
    """

    def __init__(
        self, client: redis.Redis, prefix: str = "cc:", rules: MixingRules = DEFAULT_MIXING, *,
        tag: str | None = None, lease_grace_s: float = 5.0,
        max_tracked_contacts: int = 50_000, url: str | None = None,
    ) -> None:
        self._r = client
        self._rules = rules
        self._rules_s = _rules_json(rules)
        self.prefix = prefix
        if tag is None:
            tag = prefix.rstrip(":") or "cc"
        self.base = f"{prefix}{{{tag}}}:"
        b = self.base
        self._k_ags, self._k_nw, self._k_seq = b + "ags", b + "nw", b + "seq"
        self._k_bl, self._k_bs = b + "bl", b + "bs"
        self._k_tm, self._k_tn, self._k_tc = b + "tm", b + "tn", b + "tc"
        self._k_ls, self._k_rr = b + "ls", b + "rr"
        self.lease_grace_s = lease_grace_s
        self._packed: dict[str, tuple[str, AgentRecord]] = {}  # agent -> (version `v`, its record)
        self._pool_since = -1  # the change counter at the last pool read (see _POOL)
        self._in_pool: _Avail | None = None
        # (kind, contact) timers this process knows are gone (dropped by accept/close)
        self._gone: set[tuple[TimerKind, str]] = set()
        # The RING timer the last claim set in its own step: the engine's set_timer needs no trip.
        self._armed: tuple[str, float] | None = None
        # A save_contact not yet sent: it goes with the enqueue that follows it (the engine's
        # _place), or on its own before any other step or read.
        self._pending_save: tuple[str, str] | None = None
        self._profiles: dict[str, AgentProfile] = {}
        self._buckets_known: set[str] = set()
        # contact id -> (record, its ej as last read or written): the engine holds records between
        # steps (as with the in-memory store, where the record is the stored object), so store
        # steps update the record the engine holds.
        self._recs: OrderedDict[str, tuple[ContactRecord, str, str]] = OrderedDict()
        self._max_tracked = max_tracked_contacts
        self._contacts: dict[str, Contact] = {}
        s = _Script
        self._s_add_agent = s(_ADD_AGENT)
        self._s_remove_agent = s(_REMOVE_AGENT)
        self._s_presence = s(_SET_PRESENCE)
        self._s_add_contact = s(_ADD_CONTACT)
        self._s_save = s(_SAVE_CONTACT)
        self._s_enqueue = s(_ENQUEUE)
        self._s_register = s(_REGISTER_BUCKET)
        self._s_claim = s(_CLAIM)
        self._s_accept = s(_ACCEPT)
        self._s_requeue = s(_REQUEUE)
        self._s_close = s(_CLOSE)
        self._s_forget = s(_FORGET)
        self._s_set_timer = s(_SET_TIMER)
        self._s_cancel_timer = s(_CANCEL_TIMER)
        self._s_pop_due = s(_POP_DUE)
        self._s_reclaim = s(_RECLAIM)
        self._s_pool = s(_POOL)
        self._s_capacity = s(_CAPACITY)
        self._s_waiting = s(_WAITING)
        # the thread running an engine step (RoutingRunner, in a worker thread), or None
        self._stepper: int | None = None
        self._save_lock = threading.Lock()
        self.url = url  # for the asyncio client of the event loop's reads (None: a worker thread)
        self._aio: Any = None
        self._aio_loop: Any = None

    @classmethod
    def from_url(cls, url: str, prefix: str = "cc:", rules: MixingRules = DEFAULT_MIXING,
                 **kw: Any) -> RedisStore:
        return cls(connect(url), prefix, rules, url=url, **kw)

    @property
    def rules(self) -> MixingRules:
        return self._rules

    @property
    def client(self) -> redis.Redis:
        return self._r

    def load_scripts(self) -> None:
        """Load every script now (optional: a NOSCRIPT reply loads it on first use)."""
        for v in vars(self).values():
            if isinstance(v, _Script):
                self._io(lambda v=v: self._r.script_load(v.source))

    # -- plumbing --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def stepping(self) -> Iterator[None]:
        """Mark the calling thread as the one running an engine step (see the module docstring)."""
        self._stepper = threading.get_ident()
        try:
            yield
        finally:
            self._stepper = None

    def _foreign(self) -> bool:
        """Is an engine step running in another thread than the caller's?"""
        s = self._stepper
        return s is not None and s != threading.get_ident()

    def _io(self, fn: Callable[[], T]) -> T:
        if self._pending_save is not None and not self._foreign():
            self._flush_save()
        try:
            return fn()
        except _UNAVAILABLE as e:
            raise RoutingStoreUnavailable(f"routing store: Redis is unavailable ({e})") from e

    def _run(self, script: _Script, keys: Sequence[str], args: Sequence[Any], 
             touch: str | None = None) -> Any:
        """Run one write script (one atomic step). ``touch``: the agent it may change."""
        return self._io(lambda: script(self._r, keys, args))

    def _ck(self, cid: str) -> str:
        return self.base + "c:" + cid

    def _ak(self, aid: str) -> str:
        return self.base + "a:" + aid

    # -- agents ----------------------------------------------------------------------------------

    def add_agent(self, profile: AgentProfile, now: float) -> bool:
        cap = "" if profile.capacity is None else json.dumps(
            {Channel(k).value: v for k, v in profile.capacity.items()})
        return bool(self._run(self._s_add_agent, [self._ak(profile.id), self._k_ags], [
            profile.id, _profile_json(profile), ",".join(profile.skills), cap, float(now), self.base],
            profile.id))

    def remove_agent(self, agent_id: str) -> bool:
        return bool(self._run(self._s_remove_agent, [self._ak(agent_id), self._k_ags],
                              [self.base, agent_id, self._rules_s], agent_id))

    def _agent_from(self, h: dict[str, str]) -> AgentRecord:
        ps = h["p"]
        prof = self._profiles.get(ps)
        if prof is None:
            if len(self._profiles) > 100_000:
                self._profiles.clear()
            prof = self._profiles[ps] = _profile_from(ps)
        slots: dict[str, tuple[Channel, SlotState]] = {}
        for k, v in h.items():
            if k.startswith("s:"):
                ch, _, st = v.partition("|")
                slots[k[2:]] = (Channel(ch), _SLOT_STATES[st])
        wu = _unopt(h.get("wu"))
        return AgentRecord(
            profile=prof, presence=_PRESENCES[h["pr"]], reason=_unopt(h.get("rs")),
            presence_since=float(h["ps"]), wrap_up_until=None if wu is None else float(wu),
            idle_since=float(h["id"]),
            load={Channel.VOICE: int(h["l:voice"]), Channel.CHAT: int(h["l:chat"]),
                  Channel.EMAIL: int(h["l:email"])},
            slots=slots,
        )

    def agent(self, agent_id: str) -> AgentRecord | None:
        pool = self._in_pool
        if pool is not None and not self._foreign():
            rec = pool._snap.get(agent_id)
            if rec is not None:
                return rec
        h = self._io(lambda: self._r.hgetall(self._ak(agent_id)))
        if not h:
            return None
        return self._agent_from(h)

    def agents(self, agent_ids: Sequence[str]) -> dict[str, AgentRecord]:
        """Several agents' records in one round trip (a pipeline), e.g. the chat capacity."""
        ids = list(agent_ids)

        def read() -> list[Any]:
            pipe = self._r.pipeline(transaction=False)
            for aid in ids:
                pipe.hgetall(self._ak(aid))
            return pipe.execute()

        return {aid: self._agent_from(h) for aid, h in zip(ids, self._io(read), strict=True) if h}

    def capacity(self, channel: Channel, agent_ids: Sequence[str], enough: int | None = None) -> int:
        """The `channel` capacity of these agents' profiles, over those signed in (not offline,
        not not-ready), in one round trip per 2,000 agents; stops once `enough` is reached."""
        ids, total = list(agent_ids), 0
        for i in range(0, len(ids), 2000):
            left = -1 if enough is None else enough - total
            total += int(self._io(lambda i=i, left=left: self._s_capacity(
                self._r, [], [self.base, channel.value, left, *ids[i:i + 2000]])))
            if enough is not None and total >= enough:
                break
        return total

    def waiting_queues(self, limit: int = 100) -> list[tuple[str, float, str]]:
        """Waiting contacts as (id, key, queue), best first across buckets (Engine.waiting with
        each contact's queue), in one round trip."""
        return _waiting_rows(self._io(lambda: self._s_waiting(self._r, [self._k_bl], [self.base, limit])))

    # -- asyncio reads (for callers on the event loop) --------------------------------------------

    def _aclient(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._aio is None or self._aio_loop is not loop:
            import redis.asyncio as aioredis

            assert self.url is not None
            self._aio = aioredis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5.0,
                                                socket_connect_timeout=5.0)
            self._aio_loop = loop
        return self._aio

    async def _aio_call(self, script: _Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a read script on the asyncio client."""
        try:
            return await script.acall(self._aclient(), keys, args)
        except _UNAVAILABLE as e:
            raise RoutingStoreUnavailable(f"routing store: Redis is unavailable ({e})") from e

    async def acapacity(self, channel: Channel, agent_ids: Sequence[str], enough: int | None = None) -> int:
        """`capacity` without blocking the event loop."""
        if self.url is None:
            return await asyncio.to_thread(self.capacity, channel, agent_ids, enough)
        ids, total = list(agent_ids), 0
        for i in range(0, len(ids), 2000):
            left = -1 if enough is None else enough - total
            total += int(await self._aio_call(self._s_capacity, [],
                                              [self.base, channel.value, left, *ids[i:i + 2000]]))
            if enough is not None and total >= enough:
                break
        return total

    async def awaiting_queues(self, limit: int = 100) -> list[tuple[str, float, str]]:
        """`waiting_queues` without blocking the event loop."""
        if self.url is None:
            return await asyncio.to_thread(self.waiting_queues, limit)
        return _waiting_rows(await self._aio_call(self._s_waiting, [self._k_bl], [self.base, limit]))

    async def aagent(self, agent_id: str) -> AgentRecord | None:
        """An agent's record without blocking the event loop."""
        if self.url is None:
            return await asyncio.to_thread(self.agent, agent_id)
        try:
            h = await self._aclient().hgetall(self._ak(agent_id))
        except _UNAVAILABLE as e:
            raise RoutingStoreUnavailable(f"routing store: Redis is unavailable ({e})") from e
        return self._agent_from(h) if h else None

    async def aagents(self, agent_ids: Sequence[str]) -> dict[str, AgentRecord]:
        """`agents` without blocking the event loop (one pipeline)."""
        if self.url is None:
            return await asyncio.to_thread(self.agents, agent_ids)
        ids = list(agent_ids)
        try:
            async with self._aclient().pipeline(transaction=False) as pipe:
                for aid in ids:
                    pipe.hgetall(self._ak(aid))
                rows = await pipe.execute()
        except _UNAVAILABLE as e:
            raise RoutingStoreUnavailable(f"routing store: Redis is unavailable ({e})") from e
        return {aid: self._agent_from(h) for aid, h in zip(ids, rows, strict=True) if h}

    async def aclose(self) -> None:
        """Close the asyncio client (the synchronous one is the caller's)."""
        aio, self._aio = self._aio, None
        if aio is not None:
            with contextlib.suppress(Exception):
                await aio.aclose()

    def _unpack(self, row: str) -> tuple[str, AgentRecord | None]:
        """One _POOL row: the record (the copy of that version when only the version came), or
        None when it must be read on its own."""
        aid, _, rest = row.partition("\x1f")
        v, full, fields = rest.partition("\x1f")
        got = self._packed.get(aid)
        if got is not None and got[0] == v and v != "-1":
            return aid, got[1]  # unchanged since last read: the same record
        if not full:
            return aid, None
        parts = fields.split("\x1f")
        if len(parts) % 2:
            return aid, None  # a separator inside a value: read it on its own
        rec = self._agent_from(dict(zip(parts[::2], parts[1::2], strict=True)))
        self._keep(aid, v, rec)
        return aid, rec

    def _keep(self, aid: str, v: str, rec: AgentRecord) -> None:
        if len(self._packed) > 100_000:
            self._packed.clear()
        self._packed[aid] = (v, rec)

    def agent_ids(self) -> Collection[str]:
        return sorted(self._io(lambda: self._r.smembers(self._k_ags)))

    def set_presence(
        self, agent_id: str, presence: Presence, reason: str | None, now: float,
        wrap_up_until: float | None = None,
    ) -> None:
        try:
            self._run(self._s_presence, [self._ak(agent_id)], [
                self.base, agent_id, presence.value, _opt(reason), float(now), _opt(
                    None if wrap_up_until is None else float(wrap_up_until)), self._rules_s], agent_id)
        except ResponseError as e:
            if "NOAGENT" in str(e):
                raise KeyError(agent_id) from None
            raise

    def available(self, channel: Channel, skill: str = "") -> Collection[str]:
        key = f"{self.base}av:{channel.value}:{skill}"
        since = self._pool_since
        rows = self._io(lambda: self._s_pool(self._r, [key], [self.base, since])).split("\x1e")
        snap: dict[str, AgentRecord] = {}
        ids, missing = [], []
        for row in rows[1:]:
            aid, rec = self._unpack(row)
            ids.append(aid)
            if rec is not None:
                snap[aid] = rec
            else:
                missing.append(aid)
        if missing:  # changed before the last pool read, and no copy here: read them (one trip)
            def read() -> list[Any]:
                pipe = self._r.pipeline(transaction=False)
                for aid in missing:
                    pipe.hgetall(self._ak(aid))
                return pipe.execute()

            for aid, h in zip(missing, self._io(read), strict=True):
                if h:
                    snap[aid] = rec = self._agent_from(h)
                    self._keep(aid, h.get("v", "-1"), rec)
        if not self._foreign():
            self._pool_since = max(since, int(rows[0]))
        got = _Avail(ids)
        got._store = self
        got._snap = snap
        return got

    # -- contacts --------------------------------------------------------------------------------

    def _track(self, rec: ContactRecord, cj: str, ej: str) -> None:
        cid = rec.contact.id
        self._recs[cid] = (rec, cj, ej)
        self._recs.move_to_end(cid)
        if len(self._recs) > self._max_tracked:
            self._recs.popitem(last=False)

    def add_contact(self, record: ContactRecord) -> bool:
        cid = record.contact.id
        cj, ej = _contact_json(record.contact), _engine_json(record)
        seq = self._run(self._s_add_contact, [self._ck(cid), self._k_seq], [
            cid, cj, ej, record.status.value, record.agent_id or "", record.bucket,
            float(record.key), float(-record.key)])
        if not seq:
            return False
        record.seq = int(seq)
        self._forget_timers(cid)  # a new contact has no timers
        self._contacts[cj] = record.contact
        self._track(record, cj, ej)
        return True

    def contact(self, contact_id: str) -> ContactRecord | None:
        h = self._io(lambda: self._r.hgetall(self._ck(contact_id)))
        if self._foreign():  # a view: the records the running step holds are not touched
            return self._view_record(contact_id, h) if h else None
        if not h:
            self._recs.pop(contact_id, None)
            return None
        return self._record_from(contact_id, h)

    def _view_record(self, cid: str, h: dict[str, str]) -> ContactRecord:
        rec = ContactRecord(contact=_contact_from(h["cj"]), queue="", entered_queue_at=0.0, weight=0.0,
                            requirement=Requirement(((),)))
        _apply_engine_json(rec, h["ej"])
        rec.status, rec.agent_id = _STATUSES[h["st"]], h["ag"] or None
        rec.bucket, rec.key, rec.seq = h["b"], float(h["k"]), int(h["sq"])
        return rec

    def _record_from(self, cid: str, h: dict[str, str]) -> ContactRecord:
        tracked = self._recs.get(cid)
        cj, ej = h["cj"], h["ej"]
        if tracked is not None and tracked[1] == cj:
            rec = tracked[0]
            if tracked[2] != ej:  # changed elsewhere; unsaved changes of ours are kept otherwise
                _apply_engine_json(rec, ej)
        else:
            c = self._contacts.get(cj)
            if c is None:
                if len(self._contacts) > self._max_tracked:
                    self._contacts.clear()
                c = self._contacts[cj] = _contact_from(cj)
            rec = ContactRecord(contact=c, queue="", entered_queue_at=0.0, weight=0.0,
                                requirement=Requirement(((),)))
            _apply_engine_json(rec, ej)
        rec.status = _STATUSES[h["st"]]
        rec.agent_id = h["ag"] or None
        rec.bucket = h["b"]
        rec.key = float(h["k"])
        rec.seq = int(h["sq"])
        self._track(rec, cj, ej)
        return rec

    def _take_save(self, cid: str | None = None) -> tuple[str, str] | None:
        """Take the pending save (only `cid`'s, when given): atomic, whatever thread asks."""
        with self._save_lock:
            p = self._pending_save
            if p is None or (cid is not None and p[0] != cid):
                return None
            self._pending_save = None
            return p

    def _flush_save(self) -> None:
        p = self._take_save()
        if p is not None:
            self._run(self._s_save, [self._ck(p[0])], [p[1]])

    def save_contact(self, record: ContactRecord) -> None:
        cid = record.contact.id
        ej = _engine_json(record)
        if self._pending_save is not None:
            self._flush_save()
        self._pending_save = (cid, ej)
        known = self._recs.get(cid)
        self._track(record, _contact_json(record.contact) if known is None else known[1], ej)

    def _local(self, cid: str) -> ContactRecord | None:
        t = self._recs.get(cid)
        return None if t is None else t[0]

    def enqueue(self, contact_id: str, bucket: str, key: float) -> None:
        mine = self._take_save(contact_id)
        ej = "" if mine is None else mine[1]
        try:
            self._run(self._s_enqueue, [self._ck(contact_id), self._k_nw],
                      [self.base, bucket, float(key), float(-key), ej])
        except ResponseError as e:
            if "NOCONTACT" in str(e):
                raise KeyError(contact_id) from None
            raise
        rec = self._local(contact_id)
        if rec is not None:
            rec.bucket, rec.key, rec.status, rec.agent_id = bucket, key, ContactStatus.WAITING, None

    def register_bucket(self, bucket: str) -> None:
        if bucket in self._buckets_known:
            return
        self._io(lambda: self._s_register(self._r, [self._k_bs, self._k_bl], [bucket]))
        self._buckets_known.add(bucket)

    def bucket_ids(self, start: int = 0) -> Sequence[str]:
        return self._io(lambda: self._r.lrange(self._k_bl, start, -1))

    def peek(self, bucket: str, n: int = 1) -> list[tuple[str, float]]:
        rows = self._io(lambda: self._r.zrange(f"{self.base}q:{bucket}", 0, n - 1, withscores=True))
        return [(m[13:], -s) for m, s in rows]

    def waiting_count(self, bucket: str | None = None) -> int:
        if bucket is None:
            return int(self._io(lambda: self._r.get(self._k_nw)) or 0)
        return int(self._io(lambda: self._r.zcard(f"{self.base}q:{bucket}")))

    def claim(self, contact_id: str, agent_id: str, channel: Channel, lease_until: float, now: float) -> bool:
        ok = bool(self._run(self._s_claim, [
            self._ck(contact_id), self._ak(agent_id), self._k_ls, self._k_nw,
            self._k_tm, self._k_tn, self._k_tc,
        ], [self.base, contact_id, agent_id, channel.value, float(lease_until), self._rules_s], agent_id))
        if ok:
            self._gone.discard((TimerKind.RING, contact_id))
            self._armed = (contact_id, float(lease_until))
            rec = self._local(contact_id)
            if rec is not None:
                rec.status, rec.agent_id = ContactStatus.OFFERED, agent_id
        return ok

    def accept(self, contact_id: str, agent_id: str, now: float) -> bool:
        ok = bool(self._run(self._s_accept, [self._ck(contact_id), self._ak(agent_id), self._k_ls, self._k_tm,
                                             self._k_tn], [contact_id, agent_id, self.base], agent_id))
        if ok:
            self._forget_timers(contact_id)
            rec = self._local(contact_id)
            if rec is not None:
                rec.status = ContactStatus.CONNECTED
        return ok

    def requeue(self, contact_id: str, agent_id: str, now: float) -> bool:
        ok = bool(self._run(self._s_requeue, [self._ck(contact_id), self._k_ls, self._k_nw],
                            [self.base, contact_id, agent_id, self._rules_s], agent_id))
        if ok:
            rec = self._local(contact_id)
            if rec is not None:
                rec.status, rec.agent_id = ContactStatus.WAITING, None
        return ok

    def close(self, contact_id: str, outcome: ContactStatus, now: float) -> str | None:
        if outcome not in TERMINAL:
            raise ValueError(f"close needs a terminal outcome, got {outcome}")
        try:
            ag = self._run(self._s_close, [
                self._ck(contact_id), self._k_ls, self._k_nw, self._k_tm, self._k_tn],
                           [self.base, contact_id, outcome.value, float(now), self._rules_s])
        except ResponseError as e:
            if "NOCONTACT" in str(e):
                raise KeyError(contact_id) from None
            raise
        self._forget_timers(contact_id)
        rec = self._local(contact_id)
        if rec is not None:
            rec.status = outcome
        return ag or None

    def forget(self, contact_id: str) -> None:
        self._run(self._s_forget, [self._ck(contact_id), self._k_ls, self._k_nw], [self.base, contact_id])
        self._recs.pop(contact_id, None)
        for kind in _CONTACT_TIMER_KINDS:
            self._gone.discard((kind, contact_id))

    # -- timers ----------------------------------------------------------------------------------

    def _forget_timers(self, contact_id: str) -> None:
        # accept and close dropped the contact's timers in the same step: the engine's cancels
        # that follow need no round trip
        if len(self._gone) > 100_000:
            self._gone.clear()
        self._gone.update((kind, contact_id) for kind in _CONTACT_TIMER_KINDS)

    def set_timer(self, kind: TimerKind, subject: str, due: float) -> None:
        self._gone.discard((kind, subject))
        if kind is TimerKind.RING and self._armed == (subject, due):
            self._armed = None  # the claim set it, in the same step
            return
        self._run(self._s_set_timer, [self._k_tm, self._k_tn, self._k_tc],
                  [f"{kind.value}|{subject}", float(due)])

    def cancel_timer(self, kind: TimerKind, subject: str) -> None:
        self._armed = None
        if (kind, subject) in self._gone:
            return
        self._run(self._s_cancel_timer, [self._k_tm, self._k_tn], [f"{kind.value}|{subject}"])

    def _lease_args(self, now: float) -> list[Any]:
        return [self.base, float(now), float(now - self.lease_grace_s), float(now + self.lease_grace_s)]

    def pop_due(self, now: float) -> list[Timer]:
        """Reclaim expired leases (see the module docstring), then pop the due timers."""
        flat = self._run(self._s_pop_due, [self._k_tm, self._k_tn, self._k_tc, self._k_ls],
                         self._lease_args(now))
        out: list[Timer] = []
        for i in range(0, len(flat), 2):
            kind, _, subject = flat[i].partition("|")
            out.append(Timer(float(flat[i + 1]), _TIMER_KINDS[kind], subject))
        return out

    def reclaim_expired(self, now: float) -> list[str]:
        """Re-arm the RING timer of every offer whose lease ended more than ``lease_grace_s`` ago
        (its process died); the next ``tick`` (any process) requeues it. ``pop_due`` does this
        too, in the same step. Returns the contact ids."""
        return list(self._run(self._s_reclaim, [self._k_tm, self._k_tn, self._k_tc, self._k_ls],
                              self._lease_args(now)))

    def leases(self) -> list[tuple[str, float]]:
        """Outstanding offers' leases (contact, lease_until), earliest first."""
        return self._io(lambda: self._r.zrange(self._k_ls, 0, -1, withscores=True))

    def next_due(self) -> float | None:
        """The earliest timer, or the earliest lease reclaim if that comes first."""
        def read() -> tuple[Any, Any]:
            pipe = self._r.pipeline(transaction=False)
            pipe.zrange(self._k_tm, 0, 0, withscores=True)
            pipe.zrange(self._k_ls, 0, 0, withscores=True)
            return tuple(pipe.execute())  # type: ignore[return-value]

        tm, ls = self._io(read)
        due = [tm[0][1]] if tm else []
        if ls:
            due.append(ls[0][1] + self.lease_grace_s)
        return min(due) if due else None

    # -- round robin -----------------------------------------------------------------------------

    def rr_pointer(self, queue: str) -> str | None:
        return self._io(lambda: self._r.hget(self._k_rr, queue))

    def set_rr_pointer(self, queue: str, agent_id: str) -> None:
        self._io(lambda: self._r.hset(self._k_rr, queue, agent_id))

    # -- maintenance -----------------------------------------------------------------------------

    def clear(self) -> int:
        """Delete every key of this center (SCAN + UNLINK). Not atomic; for tests and tools."""
        n = 0
        pattern = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in self.base) + "*"
        for key in self._r.scan_iter(match=pattern, count=1000):
            n += self._r.unlink(key)
        self._packed.clear()
        self._recs.clear()
        return n
