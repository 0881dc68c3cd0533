"""The child environment of an engine, built explicitly (field notes: never inherit the worker's).

Every engine the portal starts carries a marker (its server id and the portal instance) so that a stop or
a sweep finds all of its processes through /proc, EngineCore included, and never another portal's.
"""
from __future__ import annotations

from engines import tei

MARKER = "SPARKPORTAL_SERVER_ID"
# vLLM serves /sleep, /wake_up and /is_sleeping only with this set (and with it its other development
# endpoints): owned by the portal, on exactly when the profile enables sleep mode.
DEV_MODE = "VLLM_SERVER_DEV_MODE"
INSTANCE = "SPARKPORTAL_INSTANCE"
# A rank's network, set per node by an admin (Node.network_interface, Node.host_ip): which interface NCCL and
# Gloo use and which address vLLM announces. NCCL_NVLS_ENABLE=0 unless the node turns NVLink SHARP on: NCCL's
# start-up hangs on DGX Spark with it (there is no NVSwitch to find).
NETWORK_ENV = ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "VLLM_HOST_IP", "NCCL_NVLS_ENABLE")
# The few variables of the worker's own environment a child may see.
PASSED_THROUGH = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR")


def network_env(*, interface: str, host_ip: str, nvls: bool = False) -> dict:
    """The environment of one rank of a multi-node server on a node with these network settings."""
    env = {"NCCL_NVLS_ENABLE": "1" if nvls else "0"}
    if interface:
        env["NCCL_SOCKET_IFNAME"] = env["GLOO_SOCKET_IFNAME"] = interface
    if host_ip:
        env["VLLM_HOST_IP"] = host_ip
    return env


def child_env(*, base: dict, node, profile, server_id: int, instance: str, cuda_visible_devices: str,
              hf_home: str, engine: str, network: dict | None = None) -> dict:
    """The child's whole environment: node settings, then the profile's, then what the portal must own.

    `node` needs `extra_env` and `ld_library_path_prefix`; `profile` may be None or have `extra_env`;
    `network` is a multi-node rank's network_env (it wins over the node's and the profile's extra environment).
    """
    env = _node_env(base=base, node=node, extra=getattr(profile, "extra_env", None) or {})
    if network is not None:
        for name in NETWORK_ENV:
            env.pop(name, None)
        env.update(network)
    if cuda_visible_devices:
        env["CUDA_VISIBLE_DEVICES"] = cuda_visible_devices
    env["HF_HOME"] = hf_home
    # Weights are downloaded beforehand by the model registry (with progress); the engine only reads the cache.
    env.setdefault("HF_HUB_OFFLINE", "1")
    if engine == "tei":
        for name in tei.ENV_SCRUB:
            env.pop(name, None)
    env.pop(DEV_MODE, None)  # a node's extra environment must not open the dev endpoints behind the portal's back
    if engine == "vllm" and getattr(profile, "enable_sleep_mode", False):
        env[DEV_MODE] = "1"
    env.update({
        # setproctitle (vLLM titles its EngineCore with it) otherwise overwrites /proc/<pid>/environ, which
        # would hide the marker below from the stop sweep (seen on vLLM 0.26: 34 of 104 entries left).
        "SPT_NOENV": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "PYTHONUNBUFFERED": "1",
        MARKER: str(server_id),
        INSTANCE: instance,
    })
    return env


def probe_env(*, base: dict, node, hf_home: str) -> dict:
    """The engine's environment without a server marker, for short probes in the engine's own Python."""
    env = child_env(base=base, node=node, profile=None, server_id=0, instance="probe", cuda_visible_devices="",
                    hf_home=hf_home, engine="vllm")
    env.pop(MARKER, None)
    env.pop(INSTANCE, None)
    return env


def tool_env(*, base: dict, node, hf_home: str) -> dict:
    """The environment of an engine's own tool (`vllm bench serve`) on a node: the node's engine settings
    (its library path first, field notes rule two) and the weights cache, nothing else of the worker's."""
    env = _node_env(base=base, node=node, extra={})
    env.setdefault("HF_HOME", hf_home)
    env.update({"VLLM_NO_USAGE_STATS": "1", "PYTHONUNBUFFERED": "1"})
    return env


def _node_env(*, base: dict, node, extra: dict) -> dict:
    """A few of the worker's variables, the node's extra environment, then `extra`; the node's library path
    prefix goes first in LD_LIBRARY_PATH."""
    env = {k: v for k, v in base.items() if k in PASSED_THROUGH}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update({str(k): str(v) for k, v in (node.extra_env or {}).items()})
    env.update({str(k): str(v) for k, v in extra.items()})
    prefix = (node.ld_library_path_prefix or "").strip(":")
    current = env.get("LD_LIBRARY_PATH", base.get("LD_LIBRARY_PATH", ""))
    if prefix or current:
        env["LD_LIBRARY_PATH"] = ":".join(p for p in (prefix, current) if p)
    return env

