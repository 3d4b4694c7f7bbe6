"""The city portfolio, central side: every centre's BEMS reports here over MQTT.

- `store`: the portfolio store on PostgreSQL (readings partitioned by month, rollups, registry);
- `ingest`: the MQTT subscriber that validates, deduplicates and writes (`bems portfolio ingest`);
- `queries`: the ranking, a centre's figures, the city's month and year;
- `report`: the consolidated yearly report for the Department (XLSX);
- `fleet`: day-ahead models of every meter refitted on Dask.
"""
