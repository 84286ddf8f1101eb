"""The runquoter process, as a few small actors (STYLE.md 12), wired by
`quoting_worker.worker.QuoterWorker` and started by `manage.py runquoter`:

- `consumer`: the Kafka consumer thread (poll, decode, offsets, lag) and the
  routing of its records to the symbols' actors;
- `actor`: one per hosted symbol, the only actor: its queue, the engine's
  drain and its order sender;
- `ownership`: which symbols this worker hosts (assign, revoke, host,
  release, leases);
- `control`: what the database says (change notices, re-reads, flatten);
- `upkeep`: the periodic chores (live status, dead-man's switches,
  reconciliation, the engines' timer, order statuses on record);
- `durable`: the one database thread and what happens when PostgreSQL is
  unreachable.

Rooms talk through queues and the narrow methods named in each module's
docstring, never through another room's private fields. ORM access goes
through quoting_worker/adapters/store.py and the apps' services and
selectors only.
"""
