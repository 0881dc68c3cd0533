"""The fair queue in front of saturated models (see queue.py for a process's side, scripts.py for the rules)."""
from gateway.admission.queue import Admission, Grant, QueueTimeout
from gateway.admission.weights import flow_of, team_limits_of, weight_of

__all__ = ["Admission", "Grant", "QueueTimeout", "flow_of", "team_limits_of", "weight_of"]
