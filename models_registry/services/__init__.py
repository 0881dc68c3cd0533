"""Model registry services. Import from here: `from models_registry import services`."""
from models_registry.services.catalog import (  # noqa: F401
    catalog_add,
    catalog_entries,
    catalog_entry,
    catalog_entry_for_repo,
    catalog_rows,
)
from models_registry.services.downloads import (  # noqa: F401
    download_cancel,
    download_request,
    download_request_nodes,
    download_requeue_interrupted,
    download_resume,
    download_run,
    node_resolve,
)
from models_registry.services.lookups import repo_lookup_request, repo_lookup_run  # noqa: F401
from models_registry.services.memory import (  # noqa: F401
    MemoryEstimate,
    kv_bytes_per_token,
    memory_estimate,
    repo_snapshot_fetch,
)
from models_registry.services.profiles import (  # noqa: F401
    PROFILE_FIELDS,
    profile_argv,
    profile_clone,
    profile_command_line,
    profile_create,
    profile_delete,
    profile_problems,
    profile_shown_argv,
    profile_update,
)
from models_registry.services.tokens import hub_token_clear, hub_token_reveal, hub_token_set  # noqa: F401
from models_registry.services.weights import (  # noqa: F401
    weights_delete_request,
    weights_deletion_run,
    weights_scan_request,
    weights_scan_run,
)
