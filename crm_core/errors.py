"""Typed errors of the customer store. Every write that raises one of these has written nothing."""
from __future__ import annotations

from typing import Any


class CrmError(Exception):
    """Base of every error crm_core raises on purpose."""


class ValidationError(CrmError, ValueError):
    """Bad input. `field` names the offending argument when there is one."""

    def __init__(self, message: str, *, field: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class InvalidPhone(ValidationError):
    pass


class InvalidEmail(ValidationError):
    pass


class NoteTooLong(ValidationError):
    def __init__(self, length: int, limit: int, *, field: str = "notes") -> None:
        super().__init__(f"{field} is {length} characters long, the limit is {limit}", field=field)
        self.length = length
        self.limit = limit


class UnknownValue(ValidationError):
    """A value outside a closed vocabulary (tier, channel, status, role, disposition code, ...)."""

    def __init__(self, field: str, value: Any, allowed: tuple[str, ...] | list[str]) -> None:
        super().__init__(
            f"unknown {field} {value!r}; expected one of: {', '.join(allowed)}",
            field=field, value=value,
        )
        self.allowed = tuple(allowed)


class InvalidTransition(ValidationError):
    """An interaction or ticket state change the lifecycle does not allow."""


class Conflict(CrmError):
    """The write would break a uniqueness rule."""


class DuplicateContactPoint(Conflict):
    def __init__(self, kind: str, value: str, owner_id: int | None = None) -> None:
        owner = f" (customer {owner_id})" if owner_id is not None else ""
        super().__init__(f"{kind} {value} is already registered{owner}")
        self.kind = kind
        self.value = value
        self.owner_id = owner_id


class DuplicateUser(Conflict):
    pass


class NotFound(CrmError, LookupError):
    def __init__(self, entity: str, key: Any) -> None:
        super().__init__(f"{entity} {key!r} not found")
        self.entity = entity
        self.key = key


class RulesError(CrmError):
    """The rules file is malformed."""
