"""The message schemas: valid JSON Schemas, in step with docs/protocol.md, and strict."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from agent_ui import schemas
from agent_ui.schemas import MessageInvalid, validate

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
ENVELOPE = {"type", "v", "request_id"}


def doc_tables() -> dict[str, dict[str, str]]:
    """{direction: {type: row text}} from the two tables of docs/protocol.md."""
    out: dict[str, dict[str, str]] = {"server": {}, "client": {}}
    section = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = {"## Server → console": "server", "## Console → server": "client"}.get(line.strip())
        elif section and (m := re.match(r"^\| `([a-z_]+)` \|", line)):
            out[section][m.group(1)] = line
    return out


def test_every_documented_type_has_a_schema_and_vice_versa():
    tables = doc_tables()
    assert set(tables["server"]) == schemas.message_types("server")
    assert set(tables["client"]) == schemas.message_types("client")


@pytest.mark.parametrize("type_", sorted(schemas.message_types()))
def test_doc_row_names_every_field(type_):
    row = {**doc_tables()["server"], **doc_tables()["client"]}[type_]
    named = set(re.findall(r"`([a-z_]+)`", row))
    fields = set(schemas.schema(type_)["properties"]) - ENVELOPE
    assert fields <= named, f"{type_}: docs/protocol.md does not name {fields - named}"


def test_schema_files_are_valid_draft_2020_12():
    for path in schemas.SCHEMA_DIR.rglob("*.json"):
        doc = json.loads(path.read_text())
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(doc)


@pytest.mark.parametrize("type_", sorted(schemas.message_types()))
def test_every_schema_refuses_unknown_fields_and_needs_its_envelope(type_):
    s = schemas.schema(type_)
    assert s["additionalProperties"] is False
    assert "type" in s["required"]
    assert ("v" in s["required"]) == (s["x-direction"] == "server")


CARD = {
    "customer": {
        "id": 1, "name": "Ada Lovelace", "tier": "vip", "tier_override": None, "loyalty": "loyal",
        "type": "customer", "tags": ["premium"], "language": "en", "lifetime_value": "12500.00",
        "notes": None, "contact_count": 3, "last_contact_at": "2026-11-20T10:00:00+00:00",
        "created_at": "2025-01-01T00:00:00+00:00",
    },
    "contact_points": [{"id": 1, "kind": "phone", "value": "+12025550143", "label": "mobile"}],
    "recent_interactions": [{
        "id": 9, "channel": "email", "direction": "inbound", "state": "wrapup_done",
        "created_at": "2026-11-20T10:00:00+00:00", "answered_at": None, "ended_at": None,
        "queue": "billing", "agent_id": 2, "disposition_code": "resolved", "csat_score": 5,
        "notes": "Refund sent",
    }],
    "open_tickets": [{
        "id": 3, "number": "T-000003", "type": "complaint", "status": "open", "priority": "high",
        "subject": "Double charge", "sla_due_at": "2026-11-27T10:00:00+00:00", "assignee_id": None,
        "created_at": "2026-11-20T10:00:00+00:00",
    }],
    "csat_average": "4.50", "csat_count": 2,
}

VALID = [
    {"type": "hello", "v": 1, "user": {"id": 1, "username": "a", "display_name": "A", "extension": None},
     "reason_codes": [{"code": "break", "label": "Break"}], "dispositions": [],
     "wrapup_required": {"disposition": True, "notes": False}},
    {"type": "agent_state", "v": 1, "state": "wrap_up", "reason": None,
     "since": "2026-11-26T09:00:00Z", "wrapup_until": "2026-11-26T09:01:00.5+00:00"},
    {"type": "offer", "v": 1, "offer_id": "o-1", "interaction_id": 5, "channel": "voice",
     "queue": "billing", "caller": "+12025550143", "pop": {"known": True, "card": CARD},
     "ivr_path": [{"node": "menu", "digits": "2"}, {"node": "balance", "result": "****12"}],
     "reasons": [{"name": "wait_s", "value": 12.5}, {"name": "matched", "value": 0, "note": "billing"}],
     "expires_at": None},
    {"type": "offer", "v": 1, "offer_id": "o-2", "interaction_id": 6, "channel": "chat",
     "queue": None, "caller": None, "pop": {"known": False, "card": None}, "ivr_path": [],
     "reasons": [], "expires_at": "2026-11-26T09:00:30+00:00"},
    {"type": "offer_withdrawn", "v": 1, "offer_id": "o-1", "interaction_id": 5, "reason": "no_answer"},
    {"type": "contact_state", "v": 1, "interaction_id": 5, "state": "talking",
     "at": "2026-11-26T09:00:00+00:00"},
    {"type": "wrapup", "v": 1, "interaction_id": 5, "required": {"disposition": True, "notes": True},
     "until": "2026-11-26T09:02:00+00:00"},
    {"type": "wrapup_saved", "v": 1, "interaction_id": 5, "disposition": "resolved",
     "ticket": {"number": "T-000004", "type": "service_request", "status": "open"}},
    {"type": "customer", "v": 1, "interaction_id": None, "card": CARD},
    {"type": "search_results", "v": 1, "q": "ada", "page": 1, "has_more": False,
     "items": [{"id": 1, "name": "Ada", "tier": "key", "type": "partner", "phones": [], "emails": []}]},
    {"type": "error", "v": 1, "code": "not_found", "message": "no such interaction", "request_id": "r9"},
    {"type": "set_state", "state": "ready"},
    {"type": "set_state", "state": "ready", "reason": None, "request_id": "r1"},
    {"type": "set_state", "state": "not_ready", "reason": "lunch"},
    {"type": "ack_offer", "offer_id": "o-1"},
    {"type": "decline_offer", "offer_id": "o-1"},
    {"type": "answer", "interaction_id": 5},
    {"type": "hangup", "interaction_id": 5},
    {"type": "hold", "interaction_id": 5},
    {"type": "retrieve", "interaction_id": 5, "request_id": "r9"},
    {"type": "transfer", "interaction_id": 5, "target_type": "queue", "target": "billing", "notes": "n"},
    {"type": "recording", "interaction_id": 5, "action": "pause"},
    {"type": "consult", "interaction_id": 5, "target_type": "agent", "target": "agent2"},
    {"type": "consult_complete", "interaction_id": 5},
    {"type": "dial", "customer_id": 5},
    {"type": "escalate", "interaction_id": 5, "queue": "support", "reason": "Needs a specialist"},
    {"type": "escalate", "interaction_id": 5, "supervisor": "sue", "reason": "Angry customer"},
    {"type": "dial", "number": "+12025550100", "request_id": "d1"},
    # callbacks and alerts
    {"type": "offer", "v": 1, "offer_id": "o-5", "interaction_id": 9, "channel": "voice", "queue": "billing",
     "caller": "+12025550143", "pop": {"known": False, "card": None}, "ivr_path": [], "reasons": [],
     "expires_at": None, "kind": "callback",
     "callback": {"callback_id": 3, "number": "+12025550143", "attempt": 2, "max_attempts": 3,
                  "origin": "ivr", "note": None, "last_outcome": "busy"}},
    {"type": "accept_callback", "offer_id": "o-5"},
    {"type": "schedule_callback", "customer_id": 5, "at": "2026-11-26T15:00:00Z", "note": "after 3pm"},
    {"type": "schedule_callback", "number": "+12025550100", "queue": "billing", "request_id": "s1"},
    {"type": "ack_alert", "alert_id": 4},
    {"type": "wallboard_callback", "interaction_id": 12, "request_id": "cb1"},
    {"type": "wallboard", "v": 1, "seq": 7, "at": 1764090000000, "scope": ["red"],
     "queues": [{"queue": "billing", "channel": "voice", "waiting": 1, "longest_wait_since": 1764089990000, "sl_pct": 50.0,
                 "sl_target_pct": 80.0, "sl_target_s": 20, "asa_s": 8.0, "aht_s": None, "abandon_pct": 50.0,
                 "answered": 1, "answered_in_sl": 1, "abandoned": 1, "handled": 0, "transferred": 0,
                 "agents": {"ready": 0, "busy": 1, "wrap_up": 0, "not_ready": 0, "offline": 2},
                 "contacts": [{"interaction_id": 14, "customer_id": None, "customer": "+12025550199",
                               "tier": "regular", "queue": "billing", "channel": "voice", "since": 1764089990000,
                               "agent_id": None}],
                 "abandoned_contacts": [{"interaction_id": 12, "customer_id": 3, "customer": "Rob Regular",
                                         "tier": "regular", "waited_s": 30.0, "at": 1764089996000, "callback_id": None}]}],
     "agents": [{"agent_id": "2", "name": "Agent 1", "teams": ["red"], "state": "busy", "reason": None,
                 "since": 1764089997000, "contacts": [{"interaction_id": 13, "customer_id": 1,
                                                  "customer": "Victoria Important", "tier": "vip",
                                                  "queue": "billing", "channel": "voice", "since": 1764089990000}],
                 "busy_s": 60.0, "worked_s": 100.0, "handled": 0, "aht_s": None}],
     "alerts": [{"kind": "vip_waiting", "key": "vip:14", "message": "VIP waiting", "queue": "billing",
                 "agent_id": None, "interaction_id": 14}]},
    {"type": "alert_cleared", "v": 1, "alert_id": 4, "by": "sue"},
    {"type": "callback_scheduled", "v": 1, "callback_id": 3, "interaction_id": 9, "customer_id": None,
     "number": "+12025550100", "queue": "billing", "due_at": "2026-11-26T15:00:00+00:00", "max_attempts": 3},
    {"type": "callback_state", "v": 1, "callback_id": 3, "interaction_id": 9, "state": "retry",
     "outcome": "no_answer", "attempts": 1, "max_attempts": 3, "next_at": "2026-11-26T15:15:00+00:00"},
    {"type": "alert", "v": 1, "alert_id": 4, "kind": "sla_escalation", "at": "2026-11-26T15:00:00+00:00",
     "message": "Ticket T-000004 is at 80 % of its SLA: escalated to supervisors", "ticket": "T-000004",
     "queue": "supervisors"},
    {"type": "consult_cancel", "interaction_id": 5, "request_id": "c1"},
    {"type": "consult_conference", "interaction_id": 5, "request_id": "c2"},
    {"type": "conference_leave", "interaction_id": 5},
    {"type": "conference_state", "v": 1, "interaction_id": 5, "state": "active",
     "parties": ["agent", "caller", "consulted"], "target": "agent2", "at": "2026-11-26T09:00:00+00:00"},
    {"type": "consult_state", "v": 1, "interaction_id": 5, "state": "talking", "target": "agent2",
     "at": "2026-11-26T09:00:00+00:00"},
    {"type": "recording_state", "v": 1, "interaction_id": 5, "state": "paused",
     "at": "2026-11-26T09:00:00+00:00"},
    {"type": "submit_wrapup", "interaction_id": 5, "disposition": "resolved", "notes": ""},
    {"type": "submit_wrapup", "interaction_id": 5, "disposition": "resolved", "notes": "n",
     "ticket": {"type": "complaint", "subject": "Rude", "description": "…"}},
    {"type": "submit_wrapup", "interaction_id": 5, "disposition": "resolved", "notes": "n",
     "ticket": {"number": "T-000001", "status": "solved"}},
    {"type": "search", "q": "ada", "page": 2},
    {"type": "create_customer", "name": "New Person", "phone": "+12025550100", "interaction_id": 5},
    {"type": "link_number", "customer_id": 1, "interaction_id": 5},
    {"type": "update_customer", "customer_id": 1, "tier_override": None},
    {"type": "update_customer", "customer_id": 1, "customer_type": "blacklisted", "notes": "fraud"},
    # web chat
    {"type": "chat_hello", "v": 1, "canned": ["Hello!"]},
    {"type": "chat_offer", "v": 1, "offer_id": "o-3", "interaction_id": 7, "queue": "general",
     "customer_name": "Ada", "verified": False, "pop": {"known": True, "card": CARD}, "reasons": [],
     "expires_at": "2026-11-26T09:00:30+00:00"},
    {"type": "chat_started", "v": 1, "interaction_id": 7, "customer_name": "Ada", "verified": True,
     "card": None, "state": "active", "receipts": {"delivered": 1, "read": 0}, "canned": [],
     "messages": [{"seq": 1, "sender": "customer", "text": "<b>hi", "html": "&lt;b&gt;hi",
                   "at": "2026-11-26T09:00:00+00:00", "client_id": "c1"}]},
    {"type": "chat_message", "v": 1, "interaction_id": 7, "seq": 2, "sender": "agent", "text": "Hello",
     "html": "Hello", "at": "2026-11-26T09:00:01+00:00", "author": "Agent 1", "client_id": "a1"},
    {"type": "chat_peer_typing", "v": 1, "interaction_id": 7, "on": True},
    {"type": "chat_receipt", "v": 1, "interaction_id": 7, "seq": 2, "status": "read"},
    {"type": "chat_ended", "v": 1, "interaction_id": 7, "by": "customer"},
    {"type": "chat_withdrawn", "v": 1, "interaction_id": 7, "offer_id": "o-3", "reason": "no_answer"},
    {"type": "chat_accept", "offer_id": "o-3"},
    {"type": "chat_decline", "offer_id": "o-3"},
    {"type": "chat_send", "interaction_id": 7, "client_id": "a1", "text": "Hello"},
    {"type": "chat_typing", "interaction_id": 7, "on": False},
    {"type": "chat_seen", "interaction_id": 7, "seq": 1, "status": "delivered"},
    {"type": "chat_end", "interaction_id": 7},
    {"type": "chat_transfer", "interaction_id": 7, "target_type": "queue", "target": "billing"},
    {"type": "chat_wrapup", "interaction_id": 7, "disposition": "resolved", "notes": "n", "ticket": None},
    {"type": "chat_escalate", "interaction_id": 7, "queue": "billing", "reason": "Refund over limit"},
    # email
    {"type": "email", "v": 1, "interaction_id": 8, "ticket": "T-000009", "subject": "Invoice",
     "customer_address": "ada@example.com", "messages": [
         {"email_id": 1, "direction": "inbound", "status": "processed", "from": "ada@example.com",
          "to": ["support@example.com"], "subject": "Invoice", "at": "2026-11-26T09:00:00+00:00",
          "text": "Hi", "html": "<p>Hi</p>", "attachments": [
              {"id": 1, "filename": "a.pdf", "content_type": "application/pdf", "size": 10}],
          "problems": ["bad charset"], "auto": None}]},
    {"type": "email_sent", "v": 1, "interaction_id": 8, "email_id": 2, "to": "ada@example.com",
     "subject": "[T-000009] Re: Invoice", "message_id": "<x@example.com>", "at": "2026-11-26T09:00:00Z"},
    {"type": "email_accept", "offer_id": "o-4"},
    {"type": "email_reply", "interaction_id": 8, "body": "Hello"},
    {"type": "email_done", "interaction_id": 8},
    # supervisors' interventions (issue 15)
    {"type": "spy", "interaction_id": 5, "mode": "barge"},
    {"type": "spy_stop", "interaction_id": 5},
    {"type": "chat_observe", "interaction_id": 7, "on": False},
    {"type": "chat_whisper", "interaction_id": 7, "text": "offer the refund"},
    {"type": "chat_takeover", "interaction_id": 7},
    {"type": "force_state", "agent": "agent1", "state": "not_ready", "reason": "meeting", "note": "1:1"},
    {"type": "force_logout", "agent": "agent1"},
    {"type": "contact_move", "interaction_id": 5, "queue": "billing"},
    {"type": "contact_priority", "interaction_id": 5, "by": 2.5},
    {"type": "spy_state", "v": 1, "interaction_id": 5, "mode": "whisper", "state": "active",
     "at": "2026-11-25T12:00:00+00:00"},
    {"type": "intervention_done", "v": 1, "action": "contact_move", "interaction_id": 5, "queue": "billing",
     "at": "2026-11-25T12:00:00+00:00"},
    {"type": "supervisor_notice", "v": 1, "action": "force_state", "by": "Sam", "text": "Sam set you ready."},
    {"type": "whisper", "v": 1, "interaction_id": 7, "by": "Sam", "text": "hi", "at": "2026-11-25T12:00:00Z"},
    {"type": "chat_observed", "v": 1, "interaction_id": 7, "agent": "Agent 1", "customer_name": "Ann",
     "messages": [{"seq": 1, "sender": "customer", "text": "hi", "html": "hi", "at": "2026-11-25T12:00:00Z"}]},
    {"type": "observed_message", "v": 1, "interaction_id": 7,
     "message": {"seq": 2, "sender": "agent", "text": "hello", "html": "hello", "at": "2026-11-25T12:00:00Z",
                 "author": "Agent 1"}},
    # outbound campaigns (docs/campaigns.md)
    {"type": "campaign_join", "campaign_id": 1}, {"type": "campaign_leave"},
    {"type": "campaign_dial", "record_id": 3}, {"type": "campaign_skip", "record_id": 3, "reason": "wrong person"},
    {"type": "campaign_disposition", "record_id": 3, "code": "sale", "notes": "two lines"},
    {"type": "campaign_control", "campaign_id": 1, "action": "pause"}, {"type": "campaign_watch", "campaign_id": 1},
    {"type": "campaign_joined", "v": 1, "campaign_id": 1, "name": "winback", "mode": "preview", "status": "running",
     "script": "Hello", "dispositions": ["sale", "no_sale"]},
    {"type": "campaign_record", "v": 1, "kind": "pop", "campaign_id": 1, "campaign": "winback",
     "mode": "progressive", "record": {"id": 3, "name": "Ann"}, "interaction_id": 9, "script": "Hello",
     "dispositions": ["sale"], "pop": {"known": False, "card": None}},
    {"type": "campaign_state", "v": 1, "campaign_id": 1, "state": "wrap", "record_id": 3, "interaction_id": 9},
    {"type": "campaign_progress", "v": 1, "campaign_id": 1, "name": "winback", "mode": "predictive",
     "status": "running", "dialed": 10, "connected": 3, "abandoned": 0, "abandon_rate_pct": 0.0,
     "abandon_cap_pct": 3.0, "outcomes": {"answered": 3, "busy": 2}, "dispositions": {"sale": 1}, "remaining": 40,
     "records": {"pending": 40}, "agents": {"joined": 2, "free": 1}, "in_air": 4},
]


@pytest.mark.parametrize("msg", VALID, ids=lambda m: m["type"])
def test_valid_messages(msg):
    assert validate(msg) is msg


def test_examples_cover_every_type():
    assert {m["type"] for m in VALID} == schemas.message_types()


INVALID = [
    ({"type": "agent_state", "v": 1, "state": "napping", "reason": None,
      "since": "2026-11-26T09:00:00Z", "wrapup_until": None}, "/state"),
    ({"type": "agent_state", "v": 2, "state": "ready", "reason": None,
      "since": "2026-11-26T09:00:00Z", "wrapup_until": None}, "/v"),
    ({"type": "agent_state", "v": 1, "state": "ready", "reason": None,
      "since": "yesterday", "wrapup_until": None}, "/since"),
    ({"type": "set_state", "state": "not_ready"}, "/"),
    ({"type": "set_state", "state": "ready", "reason": "lunch"}, "/reason"),
    ({"type": "set_state", "state": "busy"}, "/state"),
    ({"type": "answer", "interaction_id": 0}, "/interaction_id"),
    ({"type": "search", "q": ""}, "/q"),
    ({"type": "search", "q": "x", "request_id": "x" * 65}, "/request_id"),
    ({"type": "update_customer", "customer_id": 1}, "/"),
    ({"type": "update_customer", "customer_id": 1, "type_": "vip"}, "/"),
    ({"type": "submit_wrapup", "interaction_id": 5, "disposition": "bad code!", "notes": ""},
     "/disposition"),
    ({"type": "submit_wrapup", "interaction_id": 5, "disposition": "ok", "notes": "",
      "ticket": {"type": "complaint", "number": "T-1"}}, "/ticket"),
]


@pytest.mark.parametrize("msg, path", INVALID)
def test_invalid_messages_name_the_field(msg, path):
    with pytest.raises(MessageInvalid) as e:
        validate(msg)
    assert e.value.code == "bad_message"
    assert f"(at {path})" in str(e.value)


def test_direction_and_unknown_types():
    with pytest.raises(MessageInvalid) as e:
        validate({"type": "ack_offer", "offer_id": "o"}, direction="server")
    assert e.value.code == "unknown_type"
    with pytest.raises(MessageInvalid) as e:
        validate({"type": "x" * 1000})
    assert e.value.code == "unknown_type" and len(str(e.value)) < 100
    for bad in (None, [], "hello", {"type": 3}):
        with pytest.raises(MessageInvalid) as e:
            validate(bad)
        assert e.value.code == "bad_message"
