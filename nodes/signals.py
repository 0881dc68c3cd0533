"""The nodes app's extension point.

`heartbeat_probing` is sent on a node's own host during each heartbeat, after the host and GPU probes
and before the sample is stored. Arguments: `sender` (the Node class), `node` (Node), `host` (dict of host
facts) and `gpus` (list of GPU dicts). Receivers may add keys to `host` and fill figures into `gpus` in
place. The servers app uses it to add its engines' facts and the unified-memory figures that only the
engine's own Python can read; nodes itself knows nothing of engines.
"""
from django.dispatch import Signal

heartbeat_probing = Signal()
