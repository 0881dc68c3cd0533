"""Engine metrics of servers: what each engine's `/metrics` says, turned into the figures people read.

- `derive`: parse a scrape (the families the portal uses) and derive interval figures from two snapshots
- `services`: scrape a node's ready engines, store one sample per interval, downsample and expire
- `selectors`: history and latest samples for pages, API and export
- `api`, `schemas`, `views`, `urls`: the history endpoint and the per-server page
- `exporter`: the portal's own Prometheus collector (per-server figures, node budgets, GPUs)
"""
