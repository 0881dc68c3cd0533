"""The services other apps call to change servers; the lifecycle modules hold their implementation."""
from servers.groups.on_demand import group_ensure_ready, group_idle_stop, group_on_demand_set, groups_idle_stop
from servers.groups.preflight import group_preflight
from servers.groups.services import group_restart, group_start, group_stop
from servers.lifecycle import (
    propose_port,
    server_adopt,
    server_clear,
    server_ensure_ready,
    server_idle_stop,
    server_on_demand_set,
    server_plan,
    server_restart,
    server_sleep,
    server_sleep_policy_set,
    server_start,
    server_stop,
    server_swap,
    server_touch,
    server_wake,
    servers_idle_sleep,
    servers_idle_stop,
)

__all__ = ["group_ensure_ready", "group_idle_stop", "group_on_demand_set", "groups_idle_stop", "group_preflight",
           "group_start", "group_stop", "group_restart", "server_start", "server_stop",
           "server_adopt", "server_restart", "server_clear", "server_plan", "propose_port", "server_ensure_ready",
           "server_idle_stop", "servers_idle_stop", "server_touch", "server_on_demand_set", "server_sleep",
           "server_wake", "server_swap", "server_sleep_policy_set", "servers_idle_sleep"]
