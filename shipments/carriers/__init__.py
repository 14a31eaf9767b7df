"""Carrier tracking: polling the carriers' tracking APIs for every undelivered
shipment of a connected carrier (issue 14), and the tables that give a
carrier's words their TrackSOP meaning.

Where things are:

- `status` — the one table per carrier format: a carrier status code → a
  TrackSOP event kind (or ignore); shared with the push webhooks
  (`shipments.carrier_webhooks`, `carrier_services`, `carrier_formats`).
- `tracking` — what the karrio adapter answers (`Tracked`, `NotFound`, the
  `CarrierError`s) and the provider tables; `adapter/` — the only code that
  knows karrio (`adapter.client.track`).
- `cadence` — when to ask again about a shipment (pure rules, no I/O).
- `due` — the beat's service (`carrier_sync_due`): the due rows, queued per
  account within its rate limit.
- `sync` — a batch task's service (`carrier_sync_batch`) and *Sync now*
  (`carrier_sync_shipment`): asking the carrier, and what a failed request
  means for the account.
- `recording` — turning the answers into events, ETA changes, contradiction
  notes and each sync row's result and next due time.
- `accounts` — a carrier account's rate limit, its state (ok, backing off,
  failing) and the alert mail when it fails.
- `places` — carrier places become Locations; `credentials` — carrier
  account credentials, encrypted at rest.
- `fake/` — the local fake of the carriers' APIs for tests, the demo and
  the benchmark.

The Celery tasks stay in `shipments.tasks` (their names are in queued
messages and the beat schedule).
"""
