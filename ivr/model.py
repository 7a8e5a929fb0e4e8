"""The flow as data: what the loader builds from YAML and the engine walks.

Every node is a small frozen dataclass with its ``id``, its YAML ``line`` and its exits (node
ids). ``NODE_TYPES`` says, per type, which keys it takes and which of them are exits: the loader,
the checker and the docs read that one table.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time
from typing import Final, Literal

__all__ = [
    "DTMF",
    "INPUT_TYPES",
    "NODE_TYPES",
    "TERMINAL_TYPES",
    "AudioPart",
    "BusinessHoursNode",
    "CallbackNode",
    "CollectNode",
    "Cond",
    "ConditionNode",
    "Flow",
    "HangupNode",
    "HolidaySpec",
    "LookupNode",
    "MenuNode",
    "MenuOption",
    "Node",
    "NodeSpec",
    "PlayNode",
    "PromptDef",
    "PromptLang",
    "QueueNode",
    "SayPart",
    "SetLanguageNode",
    "SurveyNode",
    "TransferNode",
    "VoicemailOrTicketNode",
    "WeeklySchedule",
]

DTMF: Final = frozenset("0123456789*#")

# --------------------------------------------------------------------------- prompts


@dataclass(frozen=True, slots=True)
class AudioPart:
    """A sound file (Asterisk name without extension, e.g. ``demo/en/welcome``)."""

    file: str


@dataclass(frozen=True, slots=True)
class SayPart:
    """A value spoken by the PBX: ``digits``, ``number`` or ``alpha``; ``var`` names a variable."""

    kind: Literal["digits", "number", "alpha"]
    var: str


@dataclass(frozen=True, slots=True)
class PromptLang:
    """One language of a prompt: ``text`` (a template with ``{var}``) and the audio parts."""

    text: str
    audio: tuple[AudioPart | SayPart, ...]


@dataclass(frozen=True, slots=True)
class PromptDef:
    id: str
    langs: Mapping[str, PromptLang]
    line: int = 0


# --------------------------------------------------------------------------- conditions


@dataclass(frozen=True, slots=True)
class Cond:
    """A condition: ``op`` is a comparison (``eq``, ``ne``, ``in``, ``not_in``, ``lt``, ``le``,
    ``gt``, ``ge``, ``exists``, ``matches``) on ``var`` with ``value``, or a combinator (``all``,
    ``any``, ``not``) over ``parts``."""

    op: str
    var: str = ""
    value: object = None
    parts: tuple[Cond, ...] = ()


# --------------------------------------------------------------------------- business hours


@dataclass(frozen=True, slots=True)
class WeeklySchedule:
    """Open intervals per weekday (0 = Monday), local time; an end of ``None`` means midnight."""

    days: tuple[tuple[tuple[time, time | None], ...], ...]  # 7 entries


@dataclass(frozen=True, slots=True)
class HolidaySpec:
    country: str | None = None
    subdiv: str | None = None
    dates: frozenset[date] = frozenset()


# --------------------------------------------------------------------------- nodes


@dataclass(frozen=True, slots=True)
class _Base:
    id: str
    line: int

    def exits(self) -> dict[str, str]:
        """Exit name -> target node id (only the exits that are set)."""
        return {}


@dataclass(frozen=True, slots=True)
class PlayNode(_Base):
    prompt: str
    next: str

    def exits(self) -> dict[str, str]:
        return {"next": self.next}


@dataclass(frozen=True, slots=True)
class MenuOption:
    digits: str
    next: str
    label: Mapping[str, str] = field(default_factory=dict)  # language -> button label (chat)


@dataclass(frozen=True, slots=True)
class MenuNode(_Base):
    prompt: str
    options: tuple[MenuOption, ...]
    on_invalid: str
    on_timeout: str
    retries: int = 2
    timeout: float = 5.0
    invalid_prompt: str | None = None
    timeout_prompt: str | None = None

    def exits(self) -> dict[str, str]:
        out = {f"options.{o.digits}": o.next for o in self.options}
        out["on_invalid"] = self.on_invalid
        out["on_timeout"] = self.on_timeout
        return out


@dataclass(frozen=True, slots=True)
class CollectNode(_Base):
    prompt: str
    var: str
    next: str
    on_invalid: str
    on_timeout: str
    min_digits: int = 1
    max_digits: int = 16
    terminator: str | None = "#"
    pattern: str | None = None
    retries: int = 2
    timeout: float = 7.0
    sensitive: bool = False
    invalid_prompt: str | None = None

    def exits(self) -> dict[str, str]:
        return {"next": self.next, "on_invalid": self.on_invalid, "on_timeout": self.on_timeout}


@dataclass(frozen=True, slots=True)
class LookupNode(_Base):
    function: str
    next: str
    args: Mapping[str, str] = field(default_factory=dict)  # name -> template
    save_as: str = ""
    timeout: float = 3.0
    sensitive: frozenset[str] = frozenset()
    on_error: str | None = None
    on_timeout: str | None = None
    on_not_found: str | None = None

    def exits(self) -> dict[str, str]:
        out = {"next": self.next}
        for k in ("on_error", "on_timeout", "on_not_found"):
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        return out


@dataclass(frozen=True, slots=True)
class ConditionNode(_Base):
    branches: tuple[tuple[Cond, str, int], ...]  # (condition, target, line)
    otherwise: str

    def exits(self) -> dict[str, str]:
        out = {f"branches[{i}]": t for i, (_, t, _line) in enumerate(self.branches)}
        out["else"] = self.otherwise
        return out


@dataclass(frozen=True, slots=True)
class BusinessHoursNode(_Base):
    timezone: str
    weekly: WeeklySchedule
    holidays: HolidaySpec
    on_open: str
    on_closed: str
    on_holiday: str | None = None
    # the name of hours an admin may manage (stored; the host hands them to the Engine): when
    # such hours exist they replace timezone/weekly/holidays above, which stay the default
    schedule: str | None = None

    def exits(self) -> dict[str, str]:
        out = {"on_open": self.on_open, "on_closed": self.on_closed}
        if self.on_holiday is not None:
            out["on_holiday"] = self.on_holiday
        return out


@dataclass(frozen=True, slots=True)
class SetLanguageNode(_Base):
    language: str | None
    next: str
    from_var: str | None = None

    def exits(self) -> dict[str, str]:
        return {"next": self.next}


@dataclass(frozen=True, slots=True)
class QueueNode(_Base):
    queue: str
    skills: Mapping[str, int] = field(default_factory=dict)
    priority_boost: int = 0
    prompt: str | None = None


@dataclass(frozen=True, slots=True)
class CallbackNode(_Base):
    number: str  # template, e.g. "{caller_id}"; empty -> always ask for the number
    queue: str
    confirm_prompt: str
    collect_prompt: str
    on_invalid: str
    min_digits: int = 7
    max_digits: int = 15
    pattern: str | None = None
    retries: int = 2
    timeout: float = 7.0
    prompt: str | None = None  # played at the end ("we will call you back")

    def exits(self) -> dict[str, str]:
        return {"on_invalid": self.on_invalid}


@dataclass(frozen=True, slots=True)
class TransferNode(_Base):
    number: str  # template
    prompt: str | None = None


@dataclass(frozen=True, slots=True)
class VoicemailOrTicketNode(_Base):
    mailbox: str
    reason: str = ""
    prompt: str | None = None


@dataclass(frozen=True, slots=True)
class SurveyNode(_Base):
    prompt: str
    retries: int = 1
    timeout: float = 7.0
    invalid_prompt: str | None = None
    thanks_prompt: str | None = None
    low: int = 1
    high: int = 5


@dataclass(frozen=True, slots=True)
class HangupNode(_Base):
    prompt: str | None = None
    reason: str = ""


Node = (PlayNode | MenuNode | CollectNode | LookupNode | ConditionNode | BusinessHoursNode
        | SetLanguageNode | QueueNode | CallbackNode | TransferNode | VoicemailOrTicketNode
        | SurveyNode | HangupNode)


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """What the YAML of a node type may hold. ``exits`` are keys whose values are node ids;
    ``prompts`` are keys whose values are prompts."""

    required: frozenset[str]
    optional: frozenset[str]
    exits: frozenset[str]
    prompts: frozenset[str]
    terminal: bool
    takes_input: bool


def _spec(required: str, optional: str = "", exits: str = "", prompts: str = "",
          terminal: bool = False, takes_input: bool = False) -> NodeSpec:
    return NodeSpec(frozenset(required.split()), frozenset(optional.split()) | {"type", "description"},
                    frozenset(exits.split()), frozenset(prompts.split()), terminal, takes_input)


NODE_TYPES: Final[Mapping[str, NodeSpec]] = {
    "play": _spec("prompt next", exits="next", prompts="prompt"),
    "menu": _spec("prompt options on_invalid",
                  "on_timeout retries timeout invalid_prompt timeout_prompt",
                  exits="on_invalid on_timeout", prompts="prompt invalid_prompt timeout_prompt",
                  takes_input=True),
    "collect": _spec("prompt var next on_invalid",
                     "on_timeout min_digits max_digits terminator pattern retries timeout sensitive "
                     "invalid_prompt",
                     exits="next on_invalid on_timeout", prompts="prompt invalid_prompt",
                     takes_input=True),
    "lookup": _spec("function next", "args save_as timeout sensitive on_error on_timeout on_not_found",
                    exits="next on_error on_timeout on_not_found"),
    "condition": _spec("branches else", exits="else"),
    "business_hours": _spec("timezone weekly on_open on_closed", "holidays on_holiday schedule",
                            exits="on_open on_closed on_holiday"),
    "set_language": _spec("next", "language from_var", exits="next"),
    "queue": _spec("queue", "skills priority_boost prompt", prompts="prompt", terminal=True),
    "callback": _spec("queue confirm_prompt collect_prompt on_invalid",
                      "number min_digits max_digits pattern retries timeout prompt",
                      exits="on_invalid", prompts="confirm_prompt collect_prompt prompt",
                      terminal=True, takes_input=True),
    "transfer": _spec("number", "prompt", prompts="prompt", terminal=True),
    "voicemail_or_ticket": _spec("mailbox", "reason prompt", prompts="prompt", terminal=True),
    "survey": _spec("prompt", "retries timeout invalid_prompt thanks_prompt low high",
                    prompts="prompt invalid_prompt thanks_prompt", terminal=True, takes_input=True),
    "hangup": _spec("", "prompt reason", prompts="prompt", terminal=True),
}

TERMINAL_TYPES: Final = frozenset(k for k, v in NODE_TYPES.items() if v.terminal)
INPUT_TYPES: Final = frozenset(k for k, v in NODE_TYPES.items() if v.takes_input)

TYPE_OF: Final[Mapping[type, str]] = {
    PlayNode: "play", MenuNode: "menu", CollectNode: "collect", LookupNode: "lookup",
    ConditionNode: "condition", BusinessHoursNode: "business_hours",
    SetLanguageNode: "set_language", QueueNode: "queue", CallbackNode: "callback",
    TransferNode: "transfer", VoicemailOrTicketNode: "voicemail_or_ticket", SurveyNode: "survey",
    HangupNode: "hangup",
}


@dataclass(frozen=True, slots=True)
class Flow:
    """A loaded flow. ``entries`` maps entry names (``main``, ``survey``) to node ids."""

    name: str
    languages: tuple[str, ...]
    default_language: str
    default_queue: str
    entries: Mapping[str, str]
    nodes: Mapping[str, Node]
    prompts: Mapping[str, PromptDef]
    sensitive: frozenset[str] = frozenset()
    source: str = "<flow>"
    line: int = 1

    def node_type(self, node_id: str) -> str:
        return TYPE_OF[type(self.nodes[node_id])]
