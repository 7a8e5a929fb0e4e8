"""CrmStore: the async operations of the customer store, on SQLite or PostgreSQL.

    store = CrmStore(Database(url), rules=Rules.default(), default_region="US")
    customer = await store.identify(phone="(202) 555-0143")
    card = await store.customer_card(customer.id)

Every write runs in one transaction: a raised CrmError means nothing was written.
"""
from __future__ import annotations

from argon2 import PasswordHasher
from phonenumbers import SUPPORTED_REGIONS

from crm_core.admin import AdminMixin
from crm_core.customers import CustomersMixin
from crm_core.db import Database
from crm_core.errors import ValidationError
from crm_core.interactions import InteractionsMixin
from crm_core.rules import Rules
from crm_core.tickets import TicketsMixin
from crm_core.users import UsersMixin


class CrmStore(CustomersMixin, InteractionsMixin, TicketsMixin, UsersMixin, AdminMixin):
    def __init__(
        self,
        db: Database,
        rules: Rules | None = None,
        default_region: str = "US",
        *,
        password_hasher: PasswordHasher | None = None,
    ) -> None:
        region = (default_region or "").upper()
        if region not in SUPPORTED_REGIONS:
            raise ValidationError(f"unknown phone region {default_region!r}",
                                  field="default_region", value=default_region)
        self.db = db
        self.rules = rules if rules is not None else Rules.default()
        self.default_region = region
        self.hasher = password_hasher or PasswordHasher()


__all__ = ["CrmStore"]
