"""Outbound webhooks: signed POSTs to the endpoints integrations register.

A message row per (event, endpoint, type) is written in the event's own
transaction (the `events_recorded` receiver), so a webhook exists exactly
when its event does, and queued on commit. Delivery claims the row with a
conditional update: a task delivered twice, or queued by both the commit
hook and the sweeper, makes one request. Retries are scheduled from the
row's `next_attempt_at`; short ones also wait in the broker, long ones only
in the database, where the sweeper finds them.

Delivery is at least once (a receiver that times out after acting on a
message gets it again, with the same webhook-id) and not in order: a retry
can be overtaken by a later message. Each message carries the shipment's
`sequence`, which grows with every committed change of the shipment.

The modules, by concern:
- `endpoints`: configuring endpoints and secrets; disabling and its mail.
- `events`: what an event means to a subscriber (types, payload); pure.
- `outbox`: writing message rows and queuing them; test sends and replays.
- `delivery`: claiming, sending, logging attempts, retries, the sweeper.
- `signing`: Standard Webhooks signatures.
- `transport`: one POST, with the guard against server-side request forgery.
- `purge`: deleting the delivery log past its retention.
(The Celery tasks stay in `notifications/tasks.py`: their names are in queued
messages and the beat schedule.)
"""
