"""Usage and cost, in one place: the ledger of gateway requests and what it is worth.

- `ledger`: the gateway's background writer (batches off the request path)
- `services`: ledger batches, API prices and cost settings
- `selectors`: usage per user/day/model/key, and the cost report (paid APIs, electricity, break-even)
- `cost`: the pure arithmetic of the cost report
- `views`, `urls`, `forms`: the Usage and Cost pages (mounted at /usage/)
- `exporter`: Prometheus counters per user and model, read from the ledger
Quota counters (what a request may still spend) are `accounts.limits`.
"""
