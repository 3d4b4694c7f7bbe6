"""The city portfolio, edge side: what a centre's BEMS sends to the city energy office.

- `schema`: the versioned topic layout and payloads (shared with the central ingest);
- `outbox`: the durable outbox in the site's SQLite, filled from the store and drained in order
  by a publisher (`connectors.mqtt`).
"""
