"""Flow loader: YAML text -> :class:`~ivr.model.Flow`, or every problem with its node and line.

Pure: it takes the text (the caller reads the file). :func:`load_flow` refuses a flow with any
error (:class:`~ivr.issues.FlowError`), so a broken flow never goes live; :func:`check_text`
returns the problems for ``callcenter ivr check``.

File layout::

    flow: demo                      # name
    languages: [en, zh]             # the first is the default unless default_language says
    default_queue: general          # where a call goes when the flow fails at run time
    entries: {main: welcome, survey: csat}
    audio_prefix: demo              # default sound file: <prefix>/<lang>/<prompt id>
    sensitive: [account]            # more variable names to mask in the recorded path
    prompts:
      welcome:
        en: "Welcome."              # text; the sound file defaults to demo/en/welcome
        zh: {text: "欢迎。", file: demo/zh/welcome}
    nodes:
      welcome: {type: play, prompt: welcome, next: menu}
      ...
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final, Literal

from ivr.conditions import parse_cond
from ivr.issues import FlowError, Issue
from ivr.model import (
    DTMF,
    NODE_TYPES,
    AudioPart,
    BusinessHoursNode,
    CallbackNode,
    CollectNode,
    Cond,
    ConditionNode,
    Flow,
    HangupNode,
    HolidaySpec,
    LookupNode,
    MenuNode,
    MenuOption,
    Node,
    PlayNode,
    PromptDef,
    PromptLang,
    QueueNode,
    SayPart,
    SetLanguageNode,
    SurveyNode,
    TransferNode,
    VoicemailOrTicketNode,
    WeeklySchedule,
)
from ivr.schedule import parse_weekly, supported_countries, zone
from ivr.values import VAR_NAME, template_vars
from ivr.yamlsrc import LineList, LineMap, load_yaml

__all__ = ["MAX_FLOW_BYTES", "RawGraph", "check_text", "load_flow", "parse_flow"]

MAX_FLOW_BYTES: Final = 1_000_000
MAX_NODES: Final = 2000
MAX_RETRIES: Final = 10
MAX_DIGITS: Final = 32
MAX_TIMEOUT: Final = 120.0
TOP_KEYS: Final = frozenset({"flow", "description", "version", "languages", "default_language",
                             "default_queue", "entries", "audio_prefix", "sensitive", "prompts",
                             "nodes"})
NODE_ID: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
LANG: Final = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
NAME: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")


@dataclass
class RawGraph:
    """What the graph checks need, gathered even from nodes that failed to parse."""

    types: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    exits: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)  # (exit, target, line)
    entries: list[tuple[str, str, int]] = field(default_factory=list)  # (entry, node, line)
    prompt_refs: list[tuple[str, str, int]] = field(default_factory=list)  # (node, prompt id, line)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.issues: list[Issue] = []
        self.graph = RawGraph()
        self.languages: tuple[str, ...] = ()
        self.audio_prefix = ""
        self.prompts: dict[str, PromptDef] = {}

    # -- reporting

    def err(self, code: str, message: str, line: int, node: str | None = None,
            severity: Literal["error", "warning"] = "error") -> None:
        self.issues.append(Issue(code, message, line, node, self.source, severity))

    # -- typed getters (report and return a default on a wrong type)

    def s(self, m: LineMap, key: str, node: str | None, default: str | None = None,
          pattern: re.Pattern[str] | None = None, what: str = "a string") -> str | None:
        if key not in m or m[key] is None:
            return default
        v = m[key]
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            self.err("bad-value", f"{key!r} must be {what}, got {type(v).__name__}", m.line_of(key), node)
            return default
        sv = str(v)
        if pattern is not None and not pattern.match(sv):
            self.err("bad-value", f"{key!r}: {sv!r} is not {what}", m.line_of(key), node)
            return default
        return sv

    def i(self, m: LineMap, key: str, node: str | None, default: int, lo: int, hi: int) -> int:
        if key not in m:
            return default
        v = m[key]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            self.err("bad-value", f"{key!r} must be a whole number from {lo} to {hi}, got {v!r}",
                     m.line_of(key), node)
            return default
        return v

    def f(self, m: LineMap, key: str, node: str | None, default: float) -> float:
        if key not in m:
            return default
        v = m[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= MAX_TIMEOUT:
            self.err("bad-value", f"{key!r} must be seconds, more than 0 and at most {MAX_TIMEOUT:g}, "
                                  f"got {v!r}", m.line_of(key), node)
            return default
        return float(v)

    def b(self, m: LineMap, key: str, node: str | None, default: bool) -> bool:
        if key not in m:
            return default
        v = m[key]
        if not isinstance(v, bool):
            self.err("bad-value", f"{key!r} must be true or false, got {v!r}", m.line_of(key), node)
            return default
        return v

    def var(self, m: LineMap, key: str, node: str) -> str:
        return self.s(m, key, node, "", VAR_NAME, "a variable name like account or customer.tier") or ""

    def template(self, m: LineMap, key: str, node: str, default: str = "") -> str:
        t = self.s(m, key, node, default)
        if t is None:
            return default
        _, bad = template_vars(t)
        if bad:
            self.err("bad-template", f"{key!r}: bad placeholder {bad[0]!r} in {t!r} "
                                     "(use {variable}, and {{ }} for literal braces)", m.line_of(key), node)
        return t

    def pattern(self, m: LineMap, key: str, node: str) -> str | None:
        p = self.s(m, key, node)
        if p is None:
            return None
        if len(p) > 500:
            self.err("bad-pattern", f"{key!r} is longer than 500 characters", m.line_of(key), node)
            return None
        try:
            re.compile(p)
        except re.error as exc:
            self.err("bad-pattern", f"{key!r}: bad regular expression {p!r}: {exc}", m.line_of(key), node)
            return None
        return p

    # -- prompts

    def prompt_lang(self, pid: str, lang: str, raw: Any, line: int, node: str | None) -> PromptLang | None:
        default_file = f"{self.audio_prefix}/{lang}/{pid}" if self.audio_prefix else f"{lang}/{pid}"
        if isinstance(raw, str):
            _, bad = template_vars(raw)
            if bad:
                self.err("bad-template", f"prompt {pid!r} [{lang}]: bad placeholder {bad[0]!r}", line, node)
            return PromptLang(raw, (AudioPart(default_file),))
        if not isinstance(raw, LineMap):
            self.err("bad-prompt", f"prompt {pid!r} [{lang}]: expected text or {{text, file|audio}}",
                     line, node)
            return None
        unknown = set(raw) - {"text", "file", "audio"}
        if unknown:
            self.err("unknown-key", f"prompt {pid!r} [{lang}]: unknown key {sorted(unknown)[0]!r} "
                                    "(expected text, file, audio)", raw.line_of(sorted(unknown)[0]), node)
        text = self.s(raw, "text", node)
        if text is None:
            self.err("missing-prompt", f"prompt {pid!r} has no text for language {lang!r}", raw.line, node)
            text = ""
        else:
            _, bad = template_vars(text)
            if bad:
                self.err("bad-template", f"prompt {pid!r} [{lang}]: bad placeholder {bad[0]!r}",
                         raw.line_of("text"), node)
        if "file" in raw and "audio" in raw:
            self.err("bad-prompt", f"prompt {pid!r} [{lang}]: give 'file' or 'audio', not both",
                     raw.line, node)
        audio: list[AudioPart | SayPart] = []
        if "audio" in raw:
            items = raw["audio"]
            if not isinstance(items, list) or not items:
                self.err("bad-prompt", f"prompt {pid!r} [{lang}]: 'audio' must be a non-empty list",
                         raw.line_of("audio"), node)
                items = []
            for item in items:
                part = self._audio_part(pid, lang, item, raw.line_of("audio"), node)
                if part is not None:
                    audio.append(part)
        else:
            f = self.s(raw, "file", node, default_file, NAME_PATH, "a sound file name like demo/en/welcome")
            audio.append(AudioPart(f or default_file))
        return PromptLang(text, tuple(audio))

    def _audio_part(self, pid: str, lang: str, item: Any, line: int,
                    node: str | None) -> AudioPart | SayPart | None:
        if isinstance(item, str):
            if not NAME_PATH.match(item):
                self.err("bad-prompt", f"prompt {pid!r} [{lang}]: bad sound file name {item!r}", line, node)
                return None
            return AudioPart(item)
        if isinstance(item, LineMap) and len(item) == 1:
            kind, var = next(iter(item.items()))
            if isinstance(var, str) and VAR_NAME.match(var):
                if kind == "digits":
                    return SayPart("digits", var)
                if kind == "number":
                    return SayPart("number", var)
                if kind == "alpha":
                    return SayPart("alpha", var)
        self.err("bad-prompt", f"prompt {pid!r} [{lang}]: an audio part is a file name or one of "
                               f"{{digits|number|alpha: variable}}, got {item!r}", line, node)
        return None

    def prompt_def(self, pid: str, raw: Any, line: int, node: str | None) -> PromptDef:
        langs: dict[str, PromptLang] = {}
        if not isinstance(raw, LineMap):
            self.err("bad-prompt", f"prompt {pid!r} must map languages to texts, like "
                                   "{en: \"Hello\", zh: \"你好\"}", line, node)
            return PromptDef(pid, langs, line)
        for lang, val in raw.items():
            if lang not in self.languages:
                self.err("unknown-language", f"prompt {pid!r} has language {lang!r}, which the flow "
                                             f"does not declare (languages: {list(self.languages)})",
                         raw.line_of(lang), node)
                continue
            pl = self.prompt_lang(pid, lang, val, raw.line_of(lang), node)
            if pl is not None:
                langs[lang] = pl
        for lang in self.languages:
            if lang not in raw:
                self.err("missing-prompt", f"prompt {pid!r} has no {lang!r} version (the flow declares "
                                           f"{list(self.languages)})", raw.line, node)
        return PromptDef(pid, langs, raw.line)

    def prompt_ref(self, m: LineMap, key: str, node: str, required: bool) -> str | None:
        """A node's prompt: the id of a shared prompt, or an inline prompt (named after the node)."""
        if key not in m or m[key] is None:
            if required:
                self.err("missing-key", f"missing {key!r}", m.line, node)
            return None
        raw = m[key]
        line = m.line_of(key)
        if isinstance(raw, str):
            self.graph.prompt_refs.append((node, raw, line))
            return raw
        pid = node if key == "prompt" else f"{node}_{key.removesuffix('_prompt')}"
        if pid in self.prompts:
            pid = f"{node}__{key}"
        self.prompts[pid] = self.prompt_def(pid, raw, line, node)
        self.graph.prompt_refs.append((node, pid, line))
        return pid

    # -- exits

    def exit(self, m: LineMap, key: str, node: str, required: bool = True) -> str | None:
        v = m.get(key)
        if v is None:
            if required and key not in m:
                self.err("missing-key", f"missing exit {key!r}", m.line, node)
            elif required:
                self.err("bad-exit", f"exit {key!r} is empty", m.line_of(key), node)
            return None
        if not isinstance(v, str) or isinstance(v, bool):
            self.err("bad-exit", f"exit {key!r} must name a node, got {v!r}", m.line_of(key), node)
            return None
        self.graph.exits[node].append((key, v, m.line_of(key)))
        return v


NAME_PATH: Final = re.compile(r"^[A-Za-z0-9_/][A-Za-z0-9_\-./]{0,200}$")


def _node(p: _Parser, nid: str, m: LineMap, t: str) -> Node | None:
    """Build one node of type ``t`` (keys already checked against NODE_TYPES)."""
    ln = m.line
    E = p.exit
    if t == "play":
        return PlayNode(nid, ln, p.prompt_ref(m, "prompt", nid, True) or "", E(m, "next", nid) or "")
    if t == "menu":
        options: list[MenuOption] = []
        raw = m.get("options")
        if not isinstance(raw, LineMap) or not raw:
            p.err("bad-value", "'options' must map digits to nodes, like {\"1\": billing}",
                  m.line_of("options"), nid)
        else:
            for digits, target in raw.items():
                oline = raw.line_of(digits)
                if not digits or len(digits) > 4 or any(c not in DTMF for c in digits):
                    p.err("bad-option", f"menu option {digits!r} is not DTMF digits (0-9 * #, at most 4)",
                          oline, nid)
                    continue
                label: dict[str, str] = {}
                nxt = target
                if isinstance(target, LineMap):
                    unknown = set(target) - {"next", "label"}
                    if unknown:
                        p.err("unknown-key", f"option {digits!r}: unknown key {sorted(unknown)[0]!r} "
                                             "(expected next, label)", oline, nid)
                    nxt = target.get("next")
                    lab = target.get("label")
                    if isinstance(lab, str):
                        label = {lg: lab for lg in p.languages}
                    elif isinstance(lab, LineMap):
                        label = {str(k): str(v) for k, v in lab.items()}
                        for lg in p.languages:
                            if lg not in label:
                                p.err("missing-prompt", f"option {digits!r}: no {lg!r} label",
                                      target.line_of("label"), nid)
                    elif lab is not None:
                        p.err("bad-value", f"option {digits!r}: 'label' must be text or per language",
                              oline, nid)
                if not isinstance(nxt, str):
                    p.err("bad-exit", f"option {digits!r} must name a node, got {nxt!r}", oline, nid)
                    continue
                p.graph.exits[nid].append((f"options.{digits}", nxt, oline))
                options.append(MenuOption(digits, nxt, label))
            lens = {len(o.digits) for o in options}
            if len(lens) > 1:
                p.err("bad-option", "menu options must all have the same number of digits",
                      m.line_of("options"), nid)
        on_invalid = E(m, "on_invalid", nid)
        on_timeout = E(m, "on_timeout", nid, required=False) or on_invalid
        return MenuNode(
            nid, ln, p.prompt_ref(m, "prompt", nid, True) or "", tuple(options), on_invalid or "",
            on_timeout or "", retries=p.i(m, "retries", nid, 2, 0, MAX_RETRIES),
            timeout=p.f(m, "timeout", nid, 5.0),
            invalid_prompt=p.prompt_ref(m, "invalid_prompt", nid, False),
            timeout_prompt=p.prompt_ref(m, "timeout_prompt", nid, False))
    if t == "collect":
        mn = p.i(m, "min_digits", nid, 1, 1, MAX_DIGITS)
        mx = p.i(m, "max_digits", nid, max(mn, 16), 1, MAX_DIGITS)
        if mn > mx:
            p.err("bad-value", f"min_digits {mn} is more than max_digits {mx}", m.line_of("min_digits"), nid)
        term: str | None = "#"
        if "terminator" in m:
            tv = m["terminator"]
            if tv is None or tv == "":
                term = None
            elif tv != "#":
                p.err("bad-value", f"'terminator' must be \"#\" or null (Asterisk's GET DATA ends on #), "
                                   f"got {tv!r}", m.line_of("terminator"), nid)
        on_invalid = E(m, "on_invalid", nid)
        return CollectNode(
            nid, ln, p.prompt_ref(m, "prompt", nid, True) or "", p.var(m, "var", nid),
            E(m, "next", nid) or "", on_invalid or "",
            E(m, "on_timeout", nid, required=False) or on_invalid or "",
            min_digits=mn, max_digits=mx, terminator=term, pattern=p.pattern(m, "pattern", nid),
            retries=p.i(m, "retries", nid, 2, 0, MAX_RETRIES), timeout=p.f(m, "timeout", nid, 7.0),
            sensitive=p.b(m, "sensitive", nid, False),
            invalid_prompt=p.prompt_ref(m, "invalid_prompt", nid, False))
    if t == "lookup":
        fn = p.s(m, "function", nid, "", re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$"), "a function name") or ""
        args: dict[str, str] = {}
        raw_args = m.get("args")
        if isinstance(raw_args, LineMap):
            for k in raw_args:
                if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k):
                    p.err("bad-value", f"argument name {k!r} is not an identifier", raw_args.line_of(k), nid)
                args[k] = p.template(raw_args, k, nid)
        elif raw_args is not None:
            p.err("bad-value", "'args' must map argument names to templates like \"{caller_id}\"",
                  m.line_of("args"), nid)
        save_as = p.s(m, "save_as", nid, nid, VAR_NAME, "a variable name") or nid
        sens = m.get("sensitive", [])
        if not isinstance(sens, list) or not all(isinstance(x, str) for x in sens):
            p.err("bad-value", "'sensitive' must be a list of result keys", m.line_of("sensitive"), nid)
            sens = []
        return LookupNode(nid, ln, fn, E(m, "next", nid) or "", args, save_as.replace("-", "_"),
                          p.f(m, "timeout", nid, 3.0), frozenset(sens),
                          E(m, "on_error", nid, False), E(m, "on_timeout", nid, False),
                          E(m, "on_not_found", nid, False))
    if t == "condition":
        branches: list[tuple[Cond, str, int]] = []
        raw_b = m.get("branches")
        if not isinstance(raw_b, LineList):
            p.err("bad-value", "'branches' must be a list of {when: CONDITION, next: NODE}",
                  m.line_of("branches"), nid)
        else:
            for idx, br in enumerate(raw_b):
                bl = br.line if isinstance(br, LineMap) else raw_b.line
                if not isinstance(br, LineMap) or set(br) - {"when", "next"} or "when" not in br:
                    p.err("bad-branch", f"branch {idx + 1} must be {{when: CONDITION, next: NODE}}", bl, nid)
                    continue
                cond, error = parse_cond(br["when"])
                if cond is None:
                    p.err("bad-condition", f"branch {idx + 1}: {error}", br.line_of("when"), nid)
                target = p.exit(br, "next", nid)
                if cond is not None and target is not None:
                    branches.append((cond, target, bl))
        otherwise = E(m, "else", nid) or ""
        return ConditionNode(nid, ln, tuple(branches), otherwise)
    if t == "business_hours":
        tz = p.s(m, "timezone", nid, "UTC") or "UTC"
        if zone(tz) is None:
            p.err("bad-timezone", f"unknown time zone {tz!r} (use an IANA name like Europe/Paris)",
                  m.line_of("timezone"), nid)
        weekly_raw = m.get("weekly")
        weekly = None
        if not isinstance(weekly_raw, LineMap):
            p.err("bad-value", "'weekly' must map days to hours, like {mon-fri: \"09:00-17:00\"}",
                  m.line_of("weekly"), nid)
        else:
            weekly, errs = parse_weekly(weekly_raw)
            for key, msg in errs:
                p.err("bad-hours", msg, weekly_raw.line_of(key), nid)
        hol = _holidays(p, m, nid)
        schedule = (p.s(m, "schedule", nid, None, VAR_NAME, "a name like main_hours")
                    if "schedule" in m else None)
        return BusinessHoursNode(nid, ln, tz, weekly or WeeklySchedule(((),) * 7), hol,
                                 E(m, "on_open", nid) or "", E(m, "on_closed", nid) or "",
                                 E(m, "on_holiday", nid, False), schedule)
    if t == "set_language":
        lang = p.s(m, "language", nid)
        from_var = p.s(m, "from_var", nid, None, VAR_NAME, "a variable name")
        if lang is None and from_var is None:
            p.err("missing-key", "set_language needs 'language' (or 'from_var')", ln, nid)
        if lang is not None and lang not in p.languages:
            p.err("unknown-language", f"language {lang!r} is not declared (languages: "
                                      f"{list(p.languages)})", m.line_of("language"), nid)
        return SetLanguageNode(nid, ln, lang, E(m, "next", nid) or "", from_var)
    if t == "queue":
        q = p.s(m, "queue", nid, "", NAME, "a queue name") or ""
        skills: dict[str, int] = {}
        raw_s = m.get("skills")
        if isinstance(raw_s, LineMap):
            for k, v in raw_s.items():
                if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 10:
                    p.err("bad-value", f"skill {k!r}: level must be 1-10, got {v!r}", raw_s.line_of(k), nid)
                else:
                    skills[k] = v
        elif isinstance(raw_s, list):
            for k in raw_s:
                if not isinstance(k, str):
                    p.err("bad-value", f"skill {k!r} must be a name", m.line_of("skills"), nid)
                else:
                    skills[k] = 1
        elif raw_s is not None:
            p.err("bad-value", "'skills' must be a list of names or a map name -> level",
                  m.line_of("skills"), nid)
        return QueueNode(nid, ln, q, skills, p.i(m, "priority_boost", nid, 0, -1000, 1000),
                         p.prompt_ref(m, "prompt", nid, False))
    if t == "callback":
        mn = p.i(m, "min_digits", nid, 7, 1, MAX_DIGITS)
        mx = p.i(m, "max_digits", nid, max(mn, 15), 1, MAX_DIGITS)
        if mn > mx:
            p.err("bad-value", f"min_digits {mn} is more than max_digits {mx}", m.line_of("min_digits"), nid)
        return CallbackNode(
            nid, ln, p.template(m, "number", nid, ""), p.s(m, "queue", nid, "", NAME, "a queue name") or "",
            p.prompt_ref(m, "confirm_prompt", nid, True) or "",
            p.prompt_ref(m, "collect_prompt", nid, True) or "", E(m, "on_invalid", nid) or "",
            min_digits=mn, max_digits=mx, pattern=p.pattern(m, "pattern", nid),
            retries=p.i(m, "retries", nid, 2, 0, MAX_RETRIES), timeout=p.f(m, "timeout", nid, 7.0),
            prompt=p.prompt_ref(m, "prompt", nid, False))
    if t == "transfer":
        return TransferNode(nid, ln, p.template(m, "number", nid), p.prompt_ref(m, "prompt", nid, False))
    if t == "voicemail_or_ticket":
        return VoicemailOrTicketNode(nid, ln, p.s(m, "mailbox", nid, "", NAME, "a mailbox name") or "",
                                     p.s(m, "reason", nid, "") or "", p.prompt_ref(m, "prompt", nid, False))
    if t == "survey":
        lo = p.i(m, "low", nid, 1, 0, 9)
        hi = p.i(m, "high", nid, 5, 0, 9)
        if lo >= hi:
            p.err("bad-value", f"low {lo} must be below high {hi}", m.line_of("low"), nid)
        return SurveyNode(nid, ln, p.prompt_ref(m, "prompt", nid, True) or "",
                          p.i(m, "retries", nid, 1, 0, MAX_RETRIES), p.f(m, "timeout", nid, 7.0),
                          p.prompt_ref(m, "invalid_prompt", nid, False),
                          p.prompt_ref(m, "thanks_prompt", nid, False), lo, hi)
    if t == "hangup":
        return HangupNode(nid, ln, p.prompt_ref(m, "prompt", nid, False), p.s(m, "reason", nid, "") or "")
    raise AssertionError(t)  # pragma: no cover - NODE_TYPES and this function agree


def _holidays(p: _Parser, m: LineMap, nid: str) -> HolidaySpec:
    raw = m.get("holidays")
    if raw is None:
        return HolidaySpec()
    if not isinstance(raw, LineMap):
        p.err("bad-value", "'holidays' must be {country: US, subdiv: CA, dates: [2026-12-24]}",
              m.line_of("holidays"), nid)
        return HolidaySpec()
    unknown = set(raw) - {"country", "subdiv", "dates"}
    if unknown:
        k = sorted(unknown)[0]
        p.err("unknown-key", f"holidays: unknown key {k!r} (expected country, subdiv, dates)",
              raw.line_of(k), nid)
    country = p.s(raw, "country", nid)
    subdiv = p.s(raw, "subdiv", nid)
    if country is not None:
        countries = supported_countries()
        if countries is None:
            p.err("no-holidays-package", "holidays by country need the 'holidays' package; "
                                         "install it or list the dates", raw.line_of("country"), nid)
            country = None
        elif country not in countries:
            p.err("bad-holidays", f"unknown holiday country {country!r}", raw.line_of("country"), nid)
            country = None
        elif subdiv is not None and subdiv not in countries[country]:
            p.err("bad-holidays", f"unknown subdivision {subdiv!r} of {country}", raw.line_of("subdiv"), nid)
            subdiv = None
    dates: set[date] = set()
    raw_d = raw.get("dates", [])
    if not isinstance(raw_d, list):
        p.err("bad-value", "holidays: 'dates' must be a list of YYYY-MM-DD", raw.line_of("dates"), nid)
        raw_d = []
    for d in raw_d:
        try:
            dates.add(date.fromisoformat(str(d)))
        except ValueError:
            p.err("bad-value", f"holidays: {d!r} is not a date like 2026-12-24", raw.line_of("dates"), nid)
    return HolidaySpec(country, subdiv, frozenset(dates))


def parse_flow(text: str, source: str = "<flow>") -> tuple[Flow | None, list[Issue], RawGraph]:
    """Parse without the graph checks: (flow or None, issues, raw graph)."""
    p = _Parser(source)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FLOW_BYTES:
        p.err("too-large", f"the flow file is larger than {MAX_FLOW_BYTES} bytes", 0)
        return None, p.issues, p.graph
    data, problems = load_yaml(text)
    for prob in problems:
        p.err("yaml", prob.message, prob.line)
    if data is None:
        if not problems:
            p.err("empty", "the flow file is empty", 0)
        return None, p.issues, p.graph
    if not isinstance(data, LineMap):
        p.err("bad-flow", "a flow file is a mapping with 'nodes', 'languages', 'entries'...", 1)
        return None, p.issues, p.graph
    top = data
    for k in top:
        if k not in TOP_KEYS:
            p.err("unknown-key", f"unknown top-level key {k!r} (expected one of {sorted(TOP_KEYS)})",
                  top.line_of(k))
    name = p.s(top, "flow", None, "flow") or "flow"
    langs_raw = top.get("languages", ["en"])
    if isinstance(langs_raw, str):
        langs_raw = [langs_raw]
    langs: list[str] = []
    if not isinstance(langs_raw, list) or not langs_raw:
        p.err("bad-value", "'languages' must be a non-empty list like [en, zh]", top.line_of("languages"))
    else:
        for lang in langs_raw:
            if not isinstance(lang, str) or not LANG.match(lang):
                p.err("bad-value", f"{lang!r} is not a language code like en, zh or pt-BR",
                      top.line_of("languages"))
            elif lang in langs:
                p.err("bad-value", f"language {lang!r} is listed twice", top.line_of("languages"))
            else:
                langs.append(lang)
    p.languages = tuple(langs) or ("en",)
    default_language = p.s(top, "default_language", None, p.languages[0]) or p.languages[0]
    if default_language not in p.languages:
        p.err("unknown-language", f"default_language {default_language!r} is not in languages",
              top.line_of("default_language"))
    default_queue = p.s(top, "default_queue", None, None, NAME, "a queue name")
    if default_queue is None:
        p.err("missing-key", "missing 'default_queue': where calls go when the flow fails at run time",
              top.line)
    p.audio_prefix = (p.s(top, "audio_prefix", None, "", NAME_PATH, "a sound directory") or "").rstrip("/")
    sensitive = top.get("sensitive", [])
    if not isinstance(sensitive, list) or not all(isinstance(x, str) for x in sensitive):
        p.err("bad-value", "'sensitive' must be a list of variable names", top.line_of("sensitive"))
        sensitive = []

    prompts_raw = top.get("prompts")
    if prompts_raw is None:
        prompts_raw = LineMap()
        prompts_raw.line, prompts_raw.key_lines = 0, {}
    if not isinstance(prompts_raw, LineMap):
        p.err("bad-value", "'prompts' must map prompt ids to their languages", top.line_of("prompts"))
    else:
        for pid, raw in prompts_raw.items():
            if not NODE_ID.match(pid):
                p.err("bad-value", f"prompt id {pid!r} must be letters, digits, _ or -",
                      prompts_raw.line_of(pid))
            p.prompts[pid] = p.prompt_def(pid, raw, prompts_raw.line_of(pid), None)

    nodes_raw = top.get("nodes")
    nodes: dict[str, Node] = {}
    if not isinstance(nodes_raw, LineMap) or not nodes_raw:
        p.err("bad-flow", "missing 'nodes': a mapping of node ids to nodes", top.line_of("nodes"))
        nodes_raw = LineMap()
        nodes_raw.line, nodes_raw.key_lines = 0, {}
    if len(nodes_raw) > MAX_NODES:
        p.err("too-large", f"more than {MAX_NODES} nodes", nodes_raw.line)
        return None, p.issues, p.graph
    for nid, raw in nodes_raw.items():
        line = nodes_raw.line_of(nid)
        if not NODE_ID.match(nid):
            p.err("bad-node-id", f"node id {nid!r} must start with a letter and hold letters, digits, "
                                 "_ or - (at most 64)", line, nid)
        p.graph.lines[nid] = line
        p.graph.exits[nid] = []
        if not isinstance(raw, LineMap):
            p.err("bad-node", "a node must be a mapping with a 'type'", line, nid)
            continue
        t = raw.get("type")
        if not isinstance(t, str):
            p.err("missing-type", "missing 'type'" if t is None else f"'type' must be text, got {t!r}",
                  raw.line_of("type"), nid)
            continue
        spec = NODE_TYPES.get(t)
        if spec is None:
            p.err("unknown-type", f"unknown node type {t!r} (known: {', '.join(sorted(NODE_TYPES))})",
                  raw.line_of("type"), nid)
            # keep its exits for the graph checks, so one typo doesn't cascade
            for k, v in raw.items():
                if isinstance(v, str) and (k == "next" or k.startswith("on_")):
                    p.graph.exits[nid].append((k, v, raw.line_of(k)))
            continue
        p.graph.types[nid] = t
        for k in raw:
            if k not in spec.required and k not in spec.optional:
                allowed = sorted((spec.required | spec.optional) - {"type", "description"})
                p.err("unknown-key", f"unknown key {k!r} for a {t} node (expected: {', '.join(allowed)})",
                      raw.line_of(k), nid)
        for k in sorted(spec.required - set(raw)):
            if k not in spec.exits and k not in spec.prompts:  # those report themselves
                p.err("missing-key", f"missing {k!r} (a {t} node needs {', '.join(sorted(spec.required))})",
                      raw.line, nid)
        built = _node(p, nid, raw, t)
        if built is not None:
            nodes[nid] = built

    entries: dict[str, str] = {}
    raw_e = top.get("entries")
    if isinstance(raw_e, str):
        raw_e = LineMap({"main": raw_e})
        raw_e.line, raw_e.key_lines = top.line_of("entries"), {"main": top.line_of("entries")}
    if not isinstance(raw_e, LineMap) or "main" not in raw_e:
        p.err("missing-key", "missing 'entries' with at least 'main' (e.g. entries: {main: welcome})",
              top.line_of("entries"))
    else:
        for ename, target in raw_e.items():
            if not isinstance(target, str):
                p.err("bad-exit", f"entry {ename!r} must name a node", raw_e.line_of(ename))
                continue
            entries[ename] = target
            p.graph.entries.append((ename, target, raw_e.line_of(ename)))

    flow = Flow(name, p.languages, default_language, default_queue or "", entries, nodes,
                dict(p.prompts), frozenset(sensitive), source, top.line)
    return flow, p.issues, p.graph


def check_text(text: str, source: str = "<flow>", *, functions: Iterable[str] | None = None,
               audio_exists: Callable[[str], bool] | None = None) -> tuple[Flow | None, list[Issue]]:
    """Parse and check. Returns (flow if it has no errors else None, every issue in line order).

    ``functions``: the lookup functions the host provides (unknown names are errors).
    ``audio_exists``: tells whether a sound file exists (missing files are errors)."""
    from ivr.checker import check_graph

    flow, issues, graph = parse_flow(text, source)
    if flow is not None:
        issues += check_graph(flow, graph, functions=functions, audio_exists=audio_exists)
    issues.sort(key=lambda i: (i.line, i.code))
    if any(i.severity == "error" for i in issues):
        return None, issues
    return flow, issues


def load_flow(text: str, source: str = "<flow>", *, functions: Iterable[str] | None = None,
              audio_exists: Callable[[str], bool] | None = None) -> Flow:
    """The flow, or :class:`FlowError` with every problem: a flow with errors never goes live."""
    flow, issues = check_text(text, source, functions=functions, audio_exists=audio_exists)
    if flow is None:
        raise FlowError(issues)
    return flow
