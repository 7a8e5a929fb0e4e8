"""The email channel: SMTP listener and IMAP poller in, smarthost out, threaded into
conversations and tickets, routed like every other contact (docs/email.md)."""
