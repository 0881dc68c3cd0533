"""Everything the portal knows about its engines (vLLM and TEI), in one pure package: no models, no
database, no processes; only data and functions that the registry, the supervisor, benchmarks and the
pages call.

- Which flags may a profile pass?            `engines.flags` (owned, refused and admin-only flags and
                                             environment names, over the tables below)
- Which flags exist?                         `engines.vllm_cli` (generated from `vllm serve --help=all`),
                                             `engines.tei` (text-embeddings-router's own list)
- The command line a server launches:        `engines.argv`
- The child's environment (marker, scrub):   `engines.environment`
- Which engine versions the portal supports: `engines.versions`
- Why an engine failed, from its log:        `engines.failures`
"""
