"""Twilio as the voice carrier: signed webhooks in, TwiML out, the REST API to move a queued caller
to an agent. The interaction lifecycle is the voice service's (callcenter/services/voice.py)."""
