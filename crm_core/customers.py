"""Customers and contact points: create/update, identify, screen pop, search, merge, tier rules."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, aliased, make_transient_to_detached, selectinload

from crm_core._base import UNSET, StoreBase
from crm_core.enums import OPEN_TICKET_STATUSES, ContactKind, CustomerType, Tier
from crm_core.errors import DuplicateContactPoint, NotFound, ValidationError
from crm_core.models import (
    ContactPoint,
    Customer,
    CustomerNameToken,
    Interaction,
    SurveyResult,
    Ticket,
)
from crm_core.normalize import (
    check_text,
    clean_language,
    clean_name,
    clean_tags,
    enum_value,
    lookup_email,
    lookup_phone,
    name_key,
    name_tokens,
    normalize_chat_id,
    normalize_contact,
    prefix_upper_bound,
)
from crm_core.types import to_money, utcnow
from crm_core.views import (
    ContactPointView,
    CustomerCard,
    CustomerView,
    InteractionSummary,
    SearchHit,
    SearchPage,
    TicketSummary,
)

CARD_INTERACTIONS = 20
CARD_TICKETS = 50
_TICKET_RE = re.compile(r"^\s*T-?0*(\d{1,12})\s*$", re.IGNORECASE)
_PHONEISH_RE = re.compile(r"^\s*\+?[\d\s().\-/]+\s*$")


_C, _CP, _IA, _T = Customer, ContactPoint, Interaction, Ticket
# Hot-path statements are built once, so each call reuses the cached compiled form as is.
_IDENTIFY = (
    select(*_C.__table__.c).join(_CP, _CP.customer_id == _C.id)
    .where(_CP.kind == bindparam("kind"), _CP.value == bindparam("value"))
)
_IDENTIFY_ID = select(_CP.customer_id).where(_CP.kind == bindparam("kind"),
                                              _CP.value == bindparam("value"))
_CARD_CUSTOMER = (
    select(
        _C.id, _C.name, _C.tier, _C.tier_override, _C.loyalty, _C.type, _C.tags, _C.language,
        _C.lifetime_value, _C.notes, _C.contact_count, _C.last_contact_at, _C.created_at,
        _C.csat_sum, _C.csat_count,
        _CP.id.label("cp_id"), _CP.kind, _CP.value, _CP.label,
    )
    .outerjoin(_CP, _CP.customer_id == _C.id)
    .where(_C.id == bindparam("cid"))
    .order_by(_CP.kind, _CP.id)
)
_CARD_INTERACTIONS = (
    select(_IA.id, _IA.channel, _IA.direction, _IA.state, _IA.created_at, _IA.answered_at,
           _IA.ended_at, _IA.queue, _IA.agent_id, _IA.disposition_code, _IA.csat_score,
           _IA.notes)
    .where(_IA.customer_id == bindparam("cid"))
    .order_by(_IA.created_at.desc(), _IA.id.desc())
    .limit(bindparam("n"))
)
_CARD_TICKETS = (
    select(_T.id, _T.number, _T.type, _T.status, _T.priority, _T.subject, _T.sla_due_at,
           _T.assignee_id, _T.created_at)
    .where(_T.customer_id == bindparam("cid"),
           _T.status.in_([s.value for s in OPEN_TICKET_STATUSES]))
    .order_by(_T.sla_due_at, _T.id)
    .limit(CARD_TICKETS)
)


def _identify_sync(conn: Connection, keys: list[tuple[str, str]]) -> Customer | None:
    for kind, value in keys:
        row = conn.execute(_IDENTIFY, {"kind": kind, "value": value}).first()
        if row is not None:
            # a detached Customer, as if loaded by a session that has closed
            c = Customer(**row._mapping)
            make_transient_to_detached(c)
            return c
    return None


def _card_sync(conn: Connection, customer_id: int, interactions: int) -> CustomerCard | None:
    rows = conn.execute(_CARD_CUSTOMER, {"cid": customer_id}).all()
    if not rows:
        return None
    inter = conn.execute(_CARD_INTERACTIONS, {"cid": customer_id, "n": interactions}).all()
    tickets = conn.execute(_CARD_TICKETS, {"cid": customer_id}).all()
    r = rows[0]
    csat_avg = None
    if r.csat_count:
        csat_avg = (Decimal(r.csat_sum) / Decimal(r.csat_count)).quantize(Decimal("0.01"))
    return CustomerCard(
        customer=CustomerView(
            id=r.id, name=r.name, tier=r.tier, tier_override=r.tier_override,
            loyalty=r.loyalty, type=r.type, tags=tuple(r.tags or ()), language=r.language,
            lifetime_value=r.lifetime_value, notes=r.notes, contact_count=r.contact_count,
            last_contact_at=r.last_contact_at, created_at=r.created_at,
        ),
        contact_points=tuple(
            ContactPointView(id=x.cp_id, kind=x.kind, value=x.value, label=x.label)
            for x in rows if x.cp_id is not None
        ),
        recent_interactions=tuple(InteractionSummary(*x) for x in inter),
        open_tickets=tuple(TicketSummary(*x) for x in tickets),
        csat_average=csat_avg,
        csat_count=r.csat_count,
    )


def _identify_card_sync(conn: Connection, keys: list[tuple[str, str]],
                        interactions: int) -> CustomerCard | None:
    for kind, value in keys:
        cid = conn.execute(_IDENTIFY_ID, {"kind": kind, "value": value}).scalar()
        if cid is not None:
            return _card_sync(conn, cid, interactions)
    return None


def ticket_number(n: int) -> str:
    """The human-readable ticket number: T-000123."""
    return f"T-{n:06d}"


def customer_snapshot(c: Customer) -> dict[str, Any]:
    return {
        "id": c.id, "name": c.name, "type": c.type, "tier": c.tier,
        "tier_override": c.tier_override, "loyalty": c.loyalty, "tags": list(c.tags or []),
        "lifetime_value": str(c.lifetime_value), "language": c.language,
    }


# A customer's contact aggregates, built once (its cache key is computed once, not per call).
_ACTIVITY = select(
    func.count(Interaction.id),
    func.min(Interaction.created_at),
    func.max(Interaction.created_at),
    func.coalesce(func.sum(case((Interaction.created_at >= bindparam("since"), 1), else_=0)), 0),
).where(Interaction.customer_id == bindparam("customer_id"))


class CustomersMixin(StoreBase):
    # ------------------------------------------------------------------ validation helpers
    def _money(self, value: Any, field: str = "lifetime_value") -> Decimal:
        try:
            d = to_money(value)
        except (TypeError, ValueError) as e:
            raise ValidationError(str(e), field=field, value=value) from e
        if d < 0:
            raise ValidationError(f"{field} cannot be negative", field=field, value=value)
        if abs(d) >= Decimal("1e12"):
            raise ValidationError(f"{field} is too large", field=field, value=value)
        return d

    def _contacts(
        self, phones: Iterable[str], emails: Iterable[str], chat_ids: Iterable[str]
    ) -> list[tuple[ContactKind, str]]:
        out: list[tuple[ContactKind, str]] = []
        for kind, items in (("phone", phones), ("email", emails), ("chat", chat_ids)):
            if isinstance(items, str):
                items = [items]
            for raw in items:
                pair = normalize_contact(kind, raw, self.default_region)
                if pair in out:
                    raise DuplicateContactPoint(pair[0].value, pair[1])
                out.append(pair)
        return out

    @staticmethod
    async def _check_free(s: AsyncSession, pairs: Sequence[tuple[ContactKind, str]]) -> None:
        if not pairs:
            return
        conds = [and_(ContactPoint.kind == k.value, ContactPoint.value == v) for k, v in pairs]
        row = (await s.execute(
            select(ContactPoint.kind, ContactPoint.value, ContactPoint.customer_id)
            .where(or_(*conds)).limit(1)
        )).first()
        if row is not None:
            raise DuplicateContactPoint(row.kind, row.value, row.customer_id)

    @staticmethod
    async def _flush_contacts(s: AsyncSession, pairs: Sequence[tuple[ContactKind, str]]) -> None:
        try:
            await s.flush()
        except IntegrityError as e:  # lost a race with a concurrent writer
            kind, value = pairs[0] if pairs else ("contact", "?")
            raise DuplicateContactPoint(str(kind), value) from e

    @staticmethod
    def _set_tokens(s: AsyncSession, customer_id: int, name: str) -> None:
        s.add_all(CustomerNameToken(token=t, customer_id=customer_id) for t in name_tokens(name))

    async def _load_customer(self, s: AsyncSession, customer_id: int) -> Customer:
        c = (await s.execute(
            select(Customer).where(Customer.id == customer_id)
            .options(selectinload(Customer.contact_points))
        )).scalar_one_or_none()
        if c is None:
            raise NotFound("Customer", customer_id)
        return c

    # ------------------------------------------------------------------ create / read / update
    async def create_customer(
        self,
        name: str,
        *,
        type: str = CustomerType.CUSTOMER.value,
        tags: Iterable[str] = (),
        lifetime_value: Decimal | int | str = Decimal("0"),
        language: str | None = None,
        notes: str | None = None,
        phones: Iterable[str] = (),
        emails: Iterable[str] = (),
        chat_ids: Iterable[str] = (),
        tier_override: str | None = None,
        created_at: datetime | None = None,
        actor: str = "system",
    ) -> Customer:
        """A new customer with its contact points; tier from lifetime value (or the override)."""
        clean = clean_name(name)
        ctype = enum_value(CustomerType, type, "type").value
        tag_list = clean_tags(tags)
        ltv = self._money(lifetime_value)
        lang = clean_language(language)
        notes = check_text(notes, self.rules.note_max_chars, "notes")
        override = None if tier_override is None else enum_value(Tier, tier_override, "tier").value
        pairs = self._contacts(phones, emails, chat_ids)
        at = self._at(created_at)

        async with self.db.session() as s, s.begin():
            await self._check_free(s, pairs)
            c = Customer(
                name=clean, name_key=name_key(clean), type=ctype, tags=tag_list,
                lifetime_value=ltv, language=lang, notes=notes, tier_override=override,
                tier=self.rules.effective_tier(ltv, override).value,
                created_at=at, updated_at=at,
            )
            c.contact_points = [ContactPoint(kind=k.value, value=v, created_at=at) for k, v in pairs]
            s.add(c)
            await self._flush_contacts(s, pairs)
            self._set_tokens(s, c.id, clean)
            if override is not None:
                self._audit(s, actor, "customer.tier_override", "customer", c.id,
                            None, {"tier_override": override})
        return c

    async def get_customer(self, customer_id: int) -> Customer:
        """The customer with its contact points loaded; NotFound if missing."""
        async with self.db.session() as s:
            return await self._load_customer(s, customer_id)

    async def update_customer(
        self,
        customer_id: int,
        *,
        name: str = UNSET,
        type: str = UNSET,
        tags: Iterable[str] = UNSET,
        lifetime_value: Decimal | int | str = UNSET,
        language: str | None = UNSET,
        notes: str | None = UNSET,
        actor: str = "system",
    ) -> Customer:
        """Change the given fields (others untouched). A new lifetime value re-derives the tier,
        unless a manual override is set."""
        changes: dict[str, Any] = {}
        if name is not UNSET:
            changes["name"] = clean_name(name)
        if type is not UNSET:
            changes["type"] = enum_value(CustomerType, type, "type").value
        if tags is not UNSET:
            changes["tags"] = clean_tags(tags)
        if lifetime_value is not UNSET:
            changes["lifetime_value"] = self._money(lifetime_value)
        if language is not UNSET:
            changes["language"] = clean_language(language)
        if notes is not UNSET:
            changes["notes"] = check_text(notes, self.rules.note_max_chars, "notes")

        async with self.db.session() as s, s.begin():
            c = await self._load_customer(s, customer_id)
            for k, v in changes.items():
                setattr(c, k, v)
            if "name" in changes:
                c.name_key = name_key(c.name)
                await s.execute(
                    delete(CustomerNameToken).where(CustomerNameToken.customer_id == c.id)
                )
                self._set_tokens(s, c.id, c.name)
            if "type" in changes and c.type == CustomerType.BLACKLISTED.value:
                self._audit(s, actor, "customer.blacklist", "customer", c.id)
            c.tier = self.rules.effective_tier(c.lifetime_value, c.tier_override).value
            c.updated_at = utcnow()
        return c

    async def add_lifetime_value(self, customer_id: int, amount: Decimal | int | str) -> Customer:
        """Add (or, negative, subtract) an amount; the tier follows unless overridden."""
        try:
            delta = to_money(amount)
        except (TypeError, ValueError) as e:
            raise ValidationError(str(e), field="amount", value=amount) from e
        async with self.db.session() as s, s.begin():
            c = await self._load_customer(s, customer_id)
            c.lifetime_value = self._money(c.lifetime_value + delta)
            c.tier = self.rules.effective_tier(c.lifetime_value, c.tier_override).value
            c.updated_at = utcnow()
        return c

    async def add_contact_point(
        self, customer_id: int, kind: str, value: str, *, label: str | None = None
    ) -> ContactPoint:
        """Attach a phone (any format, stored E.164), email or chat identity to a customer.

        DuplicateContactPoint if it already belongs to anyone (this customer included)."""
        pair = normalize_contact(kind, value, self.default_region)
        if label is not None and len(label) > 32:
            raise ValidationError("label longer than 32 characters", field="label")
        async with self.db.session() as s, s.begin():
            await self._get(s, Customer, customer_id)
            await self._check_free(s, [pair])
            cp = ContactPoint(customer_id=customer_id, kind=pair[0].value, value=pair[1],
                              label=label, created_at=utcnow())
            s.add(cp)
            await self._flush_contacts(s, [pair])
        return cp

    async def remove_contact_point(self, contact_point_id: int, *, actor: str = "system") -> None:
        async with self.db.session() as s, s.begin():
            cp = await self._get(s, ContactPoint, contact_point_id)
            self._audit(s, actor, "contact_point.remove", "customer", cp.customer_id,
                        {"kind": cp.kind, "value": cp.value}, None)
            await s.delete(cp)

    # ------------------------------------------------------------------ tier and loyalty
    async def set_tier_override(self, customer_id: int, tier: str, *, actor: str = "system") -> Customer:
        """Pin the tier by hand. Lifetime value changes no longer move it until cleared."""
        t = enum_value(Tier, tier, "tier").value
        async with self.db.session() as s, s.begin():
            c = await self._load_customer(s, customer_id)
            before = {"tier": c.tier, "tier_override": c.tier_override}
            c.tier_override = t
            c.tier = t
            c.updated_at = utcnow()
            self._audit(s, actor, "customer.tier_override", "customer", c.id, before,
                        {"tier": c.tier, "tier_override": c.tier_override})
        return c

    async def clear_tier_override(self, customer_id: int, *, actor: str = "system") -> Customer:
        """Drop the manual tier; the tier follows lifetime value again."""
        async with self.db.session() as s, s.begin():
            c = await self._load_customer(s, customer_id)
            before = {"tier": c.tier, "tier_override": c.tier_override}
            c.tier_override = None
            c.tier = self.rules.tier_for_value(c.lifetime_value).value
            c.updated_at = utcnow()
            self._audit(s, actor, "customer.tier_override_cleared", "customer", c.id, before,
                        {"tier": c.tier, "tier_override": None})
        return c

    async def _refresh_activity(self, s: AsyncSession, c: Customer, now: datetime) -> None:
        """Re-derive contact aggregates and loyalty from the interactions (one indexed query)."""
        await s.run_sync(lambda sync: self._refresh_activity_sync(sync, c, now))

    def _refresh_activity_sync(self, s: Session, c: Customer, now: datetime) -> None:
        """_refresh_activity on a sync session (the group commit's writes run on one)."""
        since = self.rules.returning_since(now)
        row = s.execute(_ACTIVITY, {"customer_id": c.id, "since": since}).one()
        total, first, last, recent = int(row[0]), row[1], row[2], int(row[3])
        c.contact_count = total
        c.first_contact_at = first
        c.last_contact_at = last
        c.loyalty = self.rules.loyalty_stage(
            total_contacts=total, recent_contacts=recent, last_contact_at=last, now=now
        ).value

    async def recompute_customer(self, customer_id: int, *, now: datetime | None = None) -> Customer:
        """Re-derive tier (from lifetime value, unless overridden) and loyalty (as of `now`)."""
        at = self._at(now)
        async with self.db.session() as s, s.begin():
            c = await self._load_customer(s, customer_id)
            c.tier = self.rules.effective_tier(c.lifetime_value, c.tier_override).value
            await self._refresh_activity(s, c, at)
        return c

    # ------------------------------------------------------------------ identify
    def _lookup_keys(self, phone: str | None, email: str | None,
                     chat_id: str | None) -> list[tuple[str, str]]:
        keys: list[tuple[str, str]] = []
        if phone is not None and (p := lookup_phone(phone, self.default_region)):
            keys.append((ContactKind.PHONE.value, p))
        if email is not None and (e := lookup_email(email)):
            keys.append((ContactKind.EMAIL.value, e))
        if chat_id is not None and isinstance(chat_id, str) and chat_id.strip():
            keys.append((ContactKind.CHAT.value, normalize_chat_id(chat_id)))
        return keys

    async def identify(
        self, phone: str | None = None, email: str | None = None, chat_id: str | None = None
    ) -> Customer | None:
        """The customer owning a caller ID / address / chat identity, or None.

        Anonymous or unparsable caller IDs give None. One indexed lookup per key given.
        Contact points are not loaded (use get_customer or customer_card for those)."""
        keys = self._lookup_keys(phone, email, chat_id)
        if not keys:
            return None
        return await self.db.read(_identify_sync, keys)

    # ------------------------------------------------------------------ screen pop
    async def customer_card(
        self, customer_id: int, *, interactions: int = CARD_INTERACTIONS
    ) -> CustomerCard:
        """The screen-pop payload in 3 queries, whatever the customer's history."""
        card = await self.db.read(_card_sync, customer_id, interactions)
        if card is None:
            raise NotFound("Customer", customer_id)
        return card

    async def identify_card(
        self, phone: str | None = None, email: str | None = None, chat_id: str | None = None
    ) -> CustomerCard | None:
        """identify + customer_card in one trip to the database (the screen pop's hot path)."""
        keys = self._lookup_keys(phone, email, chat_id)
        if not keys:
            return None
        return await self.db.read(_identify_card_sync, keys, CARD_INTERACTIONS)

    async def contact_points_of(self, customer_ids: Sequence[int]) -> dict[int, list[ContactPoint]]:
        """The contact points of several customers in one query (search results, lists)."""
        out: dict[int, list[ContactPoint]] = {cid: [] for cid in customer_ids}
        if not customer_ids:
            return out
        async with self.db.session() as s:
            rows = await s.scalars(select(ContactPoint).where(ContactPoint.customer_id.in_(customer_ids))
                                   .order_by(ContactPoint.kind, ContactPoint.id))
            for cp in rows:
                out[cp.customer_id].append(cp)
        return out

    # ------------------------------------------------------------------ search
    async def search(self, text: str, page: int = 1, page_size: int = 20) -> SearchPage:
        """Customers by ticket number (T-000123), phone (any format), email, or name.

        Names match case- and accent-insensitively on word prefixes ("smi" finds "John Smith",
        "jo sm" too) through an index; when that finds nothing, a substring scan is tried.
        Name hits are ordered by the matching word, then by customer id; `has_more` tells
        whether another page exists."""
        if not isinstance(page, int) or page < 1:
            raise ValidationError("page starts at 1", field="page", value=page)
        if not isinstance(page_size, int) or not 1 <= page_size <= 200:
            raise ValidationError("page_size must be 1..200", field="page_size", value=page_size)
        q = (text or "").strip()
        if not q:
            return SearchPage((), page, page_size, False)
        offset, limit = (page - 1) * page_size, page_size + 1
        C, CP = Customer, ContactPoint  # noqa: N806
        cols = (C.id, C.name, C.tier, C.loyalty, C.type)

        async with self.db.session() as s:
            rows: list[Any] = []
            matched = "name"
            if m := _TICKET_RE.match(q):
                matched = "ticket"
                rows = list((await s.execute(
                    select(*cols, Ticket.number).join(Ticket, Ticket.customer_id == C.id)
                    .where(Ticket.number == ticket_number(int(m.group(1))))
                    .offset(offset).limit(limit)
                )).all())
            elif "@" in q:
                matched = "email"
                exact = lookup_email(q)
                where = (CP.value == exact) if exact else and_(
                    CP.value >= q.lower(), CP.value < prefix_upper_bound(q.lower()))
                rows = list((await s.execute(
                    select(*cols, CP.value).join(CP, CP.customer_id == C.id)
                    .where(CP.kind == ContactKind.EMAIL.value, where)
                    .order_by(CP.value, C.id).offset(offset).limit(limit)
                )).all())
            elif _PHONEISH_RE.match(q) and sum(ch.isdigit() for ch in q) >= 3:
                matched = "phone"
                e164 = lookup_phone(q, self.default_region)
                digits = "".join(ch for ch in q if ch.isdigit())
                if e164:
                    where = CP.value == e164
                elif q.lstrip().startswith("+") or digits.startswith("00"):
                    pref = "+" + (digits[2:] if digits.startswith("00") else digits)
                    where = and_(CP.value >= pref, CP.value < prefix_upper_bound(pref))
                else:
                    where = None
                if where is not None:
                    rows = list((await s.execute(
                        select(*cols, CP.value).join(CP, CP.customer_id == C.id)
                        .where(CP.kind == ContactKind.PHONE.value, where)
                        .order_by(CP.value, C.id).offset(offset).limit(limit)
                    )).all())
            if matched == "name" or (not rows and matched == "phone" and page == 1):
                name_rows = await self._search_names(s, q, offset, limit)
                if name_rows:
                    matched, rows = "name", name_rows

        hits = tuple(
            SearchHit(customer_id=r[0], name=r[1], tier=r[2], loyalty=r[3], type=r[4],
                      matched_on=matched, matched_value=r[5] if len(r) > 5 else None)
            for r in rows[:page_size]
        )
        return SearchPage(hits, page, page_size, len(rows) > page_size)

    async def _search_names(self, s: AsyncSession, q: str, offset: int, limit: int) -> list[Any]:
        words = sorted(set(name_key(q).split()), key=lambda w: (-len(w), w))[:5]
        if not words:
            return []
        C, T = Customer, CustomerNameToken  # noqa: N806
        # Driven by the token index in order (matching word, then id), so a page stops early
        # however many customers share a common prefix. The other words filter by EXISTS.
        first = words[0][:64]
        stmt = (
            select(C.id, C.name, C.tier, C.loyalty, C.type)
            .select_from(T).join(C, C.id == T.customer_id)
            .where(T.token >= first, T.token < prefix_upper_bound(first))
        )
        for w in words[1:]:
            w = w[:64]
            t2 = aliased(T)
            stmt = stmt.where(
                select(t2.token).where(t2.customer_id == T.customer_id, t2.token >= w,
                                       t2.token < prefix_upper_bound(w)).exists()
            )
        raw = (await s.execute(
            stmt.order_by(T.token, T.customer_id).offset(offset).limit(limit)
        )).all()
        seen: set[int] = set()
        rows = []
        for r in raw:  # a name with two words matching the same prefix appears once
            if r[0] not in seen:
                seen.add(r[0])
                rows.append(r)
        if rows or offset:
            return rows
        key = name_key(q)
        if len(key) < 3:
            return []
        pattern = "%" + key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return list((await s.execute(
            select(C.id, C.name, C.tier, C.loyalty, C.type)
            .where(C.name_key.like(pattern, escape="\\"))
            .order_by(C.name_key, C.id).offset(offset).limit(limit)
        )).all())

    # ------------------------------------------------------------------ merge
    async def merge_customers(
        self, survivor_id: int, other_id: int, *, actor: str = "system"
    ) -> Customer:
        """Fold `other` into `survivor`: contact points, interactions, tickets and surveys move,
        tags are unioned, lifetime values and activity summed, notes kept; `other` is deleted.
        One transaction, audited."""
        if survivor_id == other_id:
            raise ValidationError("cannot merge a customer into itself", field="other_id")
        async with self.db.session() as s, s.begin():
            keep = await self._load_customer(s, survivor_id)
            gone = await self._load_customer(s, other_id)
            before = {"survivor": customer_snapshot(keep), "other": customer_snapshot(gone),
                      "other_contact_points": [
                          {"kind": cp.kind, "value": cp.value} for cp in gone.contact_points]}
            moved: dict[str, int] = {}
            for model in (ContactPoint, Interaction, Ticket, SurveyResult):
                res = await s.execute(
                    update(model).where(model.customer_id == other_id)
                    .values(customer_id=survivor_id)
                    .execution_options(synchronize_session=False)
                )
                moved[model.__tablename__] = res.rowcount  # type: ignore[attr-defined]
            keep.tags = sorted(set(keep.tags or []) | set(gone.tags or []))
            keep.lifetime_value = keep.lifetime_value + gone.lifetime_value
            keep.csat_sum += gone.csat_sum
            keep.csat_count += gone.csat_count
            if gone.notes:
                keep.notes = (keep.notes + "\n\n" + gone.notes) if keep.notes else gone.notes
            if keep.language is None:
                keep.language = gone.language
            if keep.tier_override is None and gone.tier_override is not None:
                keep.tier_override = gone.tier_override
            keep.tier = self.rules.effective_tier(keep.lifetime_value, keep.tier_override).value
            keep.updated_at = utcnow()
            for cp in gone.contact_points:  # moved above; keep the ORM from deleting them
                s.expunge(cp)
            s.expunge(gone)
            await s.flush()
            await s.execute(delete(Customer).where(Customer.id == other_id))
            await self._refresh_activity(s, keep, utcnow())
            self._audit(s, actor, "customer.merge", "customer", survivor_id, before,
                        {"survivor": customer_snapshot(keep), "merged_id": other_id,
                         "moved": moved})
        return await self.get_customer(survivor_id)
