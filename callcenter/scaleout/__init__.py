"""Several processes on one Redis and one PostgreSQL (issue 18, docs/deploy.md): the leader lease
with its fencing token (lease.py), the interaction outbox on Redis Streams (outbox.py), the
fan-out of live state to every process (fanout.py), and their wiring into the app (setup.py)."""
