"""Admission before anything is spawned: the node's utilization budget and the memory a model needs.

(a) The sum of `gpu_memory_utilization` of the node's live servers plus the new one must stay within
    the node's budget (0.85 by default): vLLM preallocates that share of the GPU and keeps it.
(a') The profile's engine must be installed on the node (its heartbeat says so): otherwise the start
    would only fail with "No such file or directory".
(b) The model's weights + KV cache for max_model_len must fit in the free memory the node last
    reported, and in the share of the GPU the server is given. A profile that ran before is judged
    by the memory it really took (parsed from its startup log), not only by the estimate.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from django.urls import reverse

from nodes.models import Node
from servers.models import Server
from sparkportal.exceptions import ValidationFailed


@dataclass
class Plan:
    node: str
    budget: float
    used: float  # sum of gpu_memory_utilization of the node's live servers
    new: float
    total_gb: float | None = None
    free_gb: float | None = None
    need_gb: float | None = None
    need_source: str = ""
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # what could not be checked, in a few words each
    code: str = ""
    fix_url: str = ""  # where an admin fixes what refuses the start (the node's settings)

    @property
    def verdict(self) -> str:
        """"refused", "unknown" (nothing refused, but something could not be checked) or "ok"."""
        return "refused" if self.errors else "unknown" if self.unknown else "ok"

    @property
    def after(self) -> float:
        return round(self.used + self.new, 4)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        return {"node": self.node, "budget": self.budget, "used": round(self.used, 4), "new": self.new,
                "after": self.after, "total_gb": self.total_gb, "free_gb": self.free_gb, "need_gb": self.need_gb,
                "need_source": self.need_source, "ok": self.ok, "verdict": self.verdict, "errors": self.errors,
                "notes": self.notes, "unknown": self.unknown, "fix_url": self.fix_url}

    def raise_if_refused(self) -> None:
        if self.errors:
            raise ValidationFailed(" ".join(self.errors), code=self.code or "refused", extra={"plan": self.as_dict()})


def is_unified(node: Node) -> bool:
    """GB10 and kin: the GPU has no memory of its own (the heartbeat's gpu facts say unified_memory)."""
    return any(gpu.get("unified_memory") for gpu in node.gpu_facts or [])


def resident_share(server: Server, *, unified: bool, level: int | None = None) -> float:
    """The share of the node's GPU memory a server holds; `level` asks "if it slept at this level".

    Level 1 offloads the weights to host memory: on a unified-memory node that is the same physical
    memory, so the server stays counted whole; on a discrete GPU it frees the GPU (host RAM is held).
    Level 2 drops weights and KV cache on both.
    """
    level = level if level is not None else (server.sleep_level if server.status == Server.Status.SLEEPING else None)
    if level is None or (level == 1 and unified):
        return float(server.gpu_memory_utilization)
    return 0.0


def budget_used(node: Node, *, exclude_id: int | None = None, asleep: dict[int, int] | None = None) -> float:
    """Sum of the resident shares of the node's live servers; `asleep` {server id: level} counts those as asleep."""
    qs = Server.objects.filter(node=node, status__in=[s for s in Server.LIVE if s != Server.Status.EXTERNAL])
    if exclude_id:
        qs = qs.exclude(pk=exclude_id)
    unified, asleep = is_unified(node), asleep or {}
    return float(sum(resident_share(s, unified=unified, level=asleep.get(s.pk)) for s in qs))


def memory_need_gb(profile, node: Node | None = None, *, parts: int = 1) -> tuple[float | None, str]:
    """(GB, where the number comes from): the last measured run of this profile, else the registry estimate.

    With `parts` above 1 (a rank of a multi-node server), one node's share: the measure of a leader's start (its
    own share), else the estimate split evenly.
    """
    measured = (Server.objects.filter(profile=profile, measured_memory_gb__isnull=False, rank=0)
                .filter(group__isnull=parts == 1)
                .order_by("-ready_at").values_list("measured_memory_gb", flat=True).first())
    if measured is not None:
        return float(measured), "measured at its last start" + (" (one node's share)" if parts > 1 else "")
    estimate = registry_estimate_gb(profile, node)
    if estimate is not None and parts > 1:
        return round(estimate / parts, 2), f"estimated from the weights and the KV cache, split over {parts} nodes"
    if estimate is not None:  # a tiny model's estimate rounds to 0.0 GB and is still an estimate
        return estimate, "estimated from the weights and the KV cache for max_model_len"
    return None, ""


def registry_estimate_gb(profile, node: Node | None = None) -> float | None:
    """The model registry's weights + KV cache (for max_model_len) estimate, in GB, when it can make one."""
    from models_registry import services as registry

    try:
        estimate = registry.memory_estimate(profile=profile, node=node)
    except Exception:  # noqa: BLE001 - an unreadable config.json must not block the page: the plan says "unknown"
        return None
    return round(estimate.total_bytes / 1e9, 2) if estimate.total_bytes else None


def node_memory(node: Node, cuda_visible_devices: str = "") -> tuple[float | None, float | None]:
    """(total GB, free GB) of the GPUs the server will see, from the node's last heartbeat."""
    gpus = list(node.gpu_facts or [])
    if cuda_visible_devices:
        wanted = {part.strip() for part in cuda_visible_devices.split(",")}
        gpus = [g for g in gpus if str(g.get("index")) in wanted or g.get("uuid") in wanted] or gpus
    if not gpus:
        return None, None
    total = free = 0.0
    for gpu in gpus:
        if gpu.get("unified_memory"):
            # GB10: NVML has no memory figures; the heartbeat measured them with torch in the engine's Python,
            # or else the host's RAM is the pool.
            host = node.host_facts or {}
            gpu_total = gpu.get("memory_total_gb") or host.get("ram_total_gb")
            gpu_free = gpu.get("memory_free_gb")
            if gpu_free is None and host.get("ram_total_gb") is not None:
                gpu_free = host["ram_total_gb"] - host.get("ram_used_gb", 0)
        else:
            gpu_total = gpu.get("memory_total_gb")
            used = gpu.get("memory_used_gb")
            gpu_free = gpu_total - used if gpu_total is not None and used is not None else None
        if gpu_total is None or gpu_free is None:
            return None, None
        total += gpu_total
        free += gpu_free
    return round(total, 2), round(free, 2)


def plan_start(*, node: Node, profile, gpu_memory_utilization: float, cuda_visible_devices: str = "",
               exclude_id: int | None = None, parts: int = 1) -> Plan:
    """Does a server of `profile` fit on `node`? `parts`: the model is split over that many nodes (a multi-node
    rank holds its share of the weights and its KV cache)."""
    plan = Plan(node=node.name, budget=node.memory_budget, used=budget_used(node, exclude_id=exclude_id),
                new=gpu_memory_utilization)
    if plan.after > plan.budget + 1e-9:
        plan.code = "over_budget"
        plan.errors.append(
            f"Node {node.name} would use {plan.after:.2f} of its GPU memory budget {plan.budget:.2f} "
            f"({plan.used:.2f} by running servers + {plan.new:.2f} for this one): lower gpu_memory_utilization "
            "or stop a server.")
    check_engine(plan, node=node, engine=profile.engine)
    check_weights(plan, node=node, profile=profile)
    check_memory(plan, node=node, profile=profile, gpu_memory_utilization=gpu_memory_utilization,
                 cuda_visible_devices=cuda_visible_devices, parts=parts)
    return plan


ENGINE_NAMES = {"vllm": "vLLM", "tei": "TEI"}


def check_engine(plan: Plan, *, node: Node, engine: str) -> None:
    """Refuse when the node's last heartbeat found no executable of the engine; unknown without a heartbeat."""
    name = ENGINE_NAMES.get(engine, engine)
    facts = ((node.host_facts or {}).get("engines") or {}).get(engine)
    if facts is None:
        plan.unknown.append(f"whether {name} is installed")
        plan.notes.append(f"Unknown whether {name} is installed on node {node.name}: its worker has not reported "
                          "its engines yet.")
    elif not facts.get("found"):
        plan.code = plan.code or "engine_missing"
        plan.fix_url = reverse("admin:nodes_node_change", args=[node.pk])
        plan.errors.append(f"{name} is not installed on node {node.name}: {facts.get('executable') or engine} "
                           f"was not found. An admin sets the node's {name} executable in Admin → Nodes.")


def check_weights(plan: Plan, *, node: Node, profile) -> None:
    """Say when the node's last weights scan does not list the profile's repo: engines start offline."""
    from models_registry.models import ModelProfile, NodeWeights

    if profile.source != ModelProfile.Source.HUB or not profile.repo_id:
        return
    scan = NodeWeights.objects.filter(node=node, scanned_at__isnull=False).first()
    if scan is None:
        plan.unknown.append("whether the weights are downloaded")
        plan.notes.append(f"Unknown whether {profile.repo_id} is downloaded on node {node.name}: its weights "
                          "were never scanned.")
    elif profile.repo_id.lower() not in {str(r.get("repo_id", "")).lower() for r in scan.repos or []}:
        plan.unknown.append("the weights are not downloaded")
        plan.notes.append(f"{profile.repo_id} is not among the weights downloaded on node {node.name} (last scan): "
                          "download it first, engines start offline.")


def check_memory(plan: Plan, *, node: Node, profile, gpu_memory_utilization: float,
                 cuda_visible_devices: str, parts: int = 1) -> None:
    plan.total_gb, plan.free_gb = node_memory(node, cuda_visible_devices)
    plan.need_gb, plan.need_source = memory_need_gb(profile, node, parts=parts)
    if plan.need_gb is None:
        plan.unknown.append("the memory the model needs")
        plan.notes.append("No memory estimate for this model yet (download it so its config.json and weights are "
                          "known); only the budget was checked.")
    elif plan.free_gb is None:
        plan.unknown.append("the node's free GPU memory")
        plan.notes.append(f"The model needs about {plan.need_gb:.1f} GB ({plan.need_source}); node {node.name} "
                          "reported no GPU memory figures, so free memory was not checked.")
    else:
        share = gpu_memory_utilization * plan.total_gb if plan.total_gb else None
        if plan.need_gb > plan.free_gb:
            plan.code = plan.code or "not_enough_memory"
            plan.errors.append(
                f"The model needs about {plan.need_gb:.1f} GB ({plan.need_source}) but node {node.name} has only "
                f"{plan.free_gb:.1f} GB free of {plan.total_gb:.1f} GB: stop a server or pick a smaller model.")
        elif share is not None and plan.need_gb > share:
            plan.code = plan.code or "not_enough_memory"
            plan.errors.append(
                f"The model needs about {plan.need_gb:.1f} GB ({plan.need_source}) but gpu_memory_utilization "
                f"{gpu_memory_utilization:.2f} gives it only {share:.1f} GB of {plan.total_gb:.1f} GB: raise "
                "gpu_memory_utilization or lower max_model_len.")


# --- sleep mode ---------------------------------------------------------------------------------------------------

def _released_since_heartbeat_gb(node: Node, *, total_gb: float, unified: bool) -> float:
    """GPU memory freed by servers that fell asleep after the node's last heartbeat (its free figure predates them)."""
    since = node.last_heartbeat_at
    sleepers = Server.objects.filter(node=node, status=Server.Status.SLEEPING, slept_at__isnull=False)
    if since is not None:
        sleepers = sleepers.filter(slept_at__gt=since)
    return sum((s.gpu_memory_utilization - resident_share(s, unified=unified)) * total_gb for s in sleepers)


def plan_wake(*, node: Node, server: Server, asleep: dict[int, int] | None = None) -> Plan:
    """Does waking `server` fit? `asleep` counts other servers as asleep (a swap admitted as one step).

    The server takes back the share it gave up (nothing for a level-1 sleeper on a unified-memory node).
    """
    unified = is_unified(node)
    regained = float(server.gpu_memory_utilization) - resident_share(server, unified=unified)
    plan = Plan(node=node.name, budget=node.memory_budget, used=budget_used(node, exclude_id=server.pk, asleep=asleep)
                + float(server.gpu_memory_utilization) - regained, new=round(regained, 4))
    if plan.after > plan.budget + 1e-9:
        plan.code = "over_budget"
        plan.errors.append(f"Waking {server.served_model_name} would use {plan.after:.2f} of node {node.name}'s GPU "
                           f"memory budget {plan.budget:.2f}: put another server to sleep or stop one first.")
    plan.total_gb, plan.free_gb = node_memory(node, server.cuda_visible_devices)
    if regained <= 0:
        plan.notes.append("Its memory stayed resident while asleep (level 1 on unified memory): waking takes no more.")
        return plan
    if plan.total_gb is None or plan.free_gb is None:
        plan.notes.append(f"Node {node.name} reported no GPU memory figures: only the budget was checked.")
        return plan
    plan.free_gb = round(plan.free_gb + _released_since_heartbeat_gb(node, total_gb=plan.total_gb, unified=unified)
                         + _swap_release_gb(node, asleep, total_gb=plan.total_gb, unified=unified), 2)
    plan.need_gb, plan.need_source = round(regained * plan.total_gb, 2), "its gpu_memory_utilization share"
    if plan.need_gb > plan.free_gb:
        plan.code = plan.code or "not_enough_memory"
        plan.errors.append(f"Waking {server.served_model_name} needs about {plan.need_gb:.1f} GB but node {node.name} "
                           f"has only {plan.free_gb:.1f} GB free: put another server to sleep or stop one first.")
    return plan


def _swap_release_gb(node: Node, asleep: dict[int, int] | None, *, total_gb: float, unified: bool) -> float:
    if not asleep:
        return 0.0
    going = Server.objects.filter(node=node, pk__in=list(asleep), status=Server.Status.READY)
    return sum((s.gpu_memory_utilization - resident_share(s, unified=unified, level=asleep[s.pk])) * total_gb
               for s in going)


def plan_sleep(*, node: Node, server: Server, level: int) -> Plan:
    """Level 1 on a discrete GPU moves the weights into host RAM: they must fit in what the host has free."""
    plan = Plan(node=node.name, budget=node.memory_budget, used=budget_used(node), new=0.0)
    if level != 1 or is_unified(node) or server.profile is None:
        return plan
    host = node.host_facts or {}
    weights = weights_gb(server.profile, node)
    if host.get("ram_total_gb") is None or weights is None:
        plan.notes.append("The host's free RAM or the weights' size is unknown: level 1 was not checked against it.")
        return plan
    plan.free_gb = round(host["ram_total_gb"] - host.get("ram_used_gb", 0), 2)
    plan.need_gb, plan.need_source = weights, "the weights, held in host RAM while asleep"
    if weights > plan.free_gb:
        plan.code = "not_enough_memory"
        plan.errors.append(f"Level 1 keeps the weights ({weights:.1f} GB) in host RAM but node {node.name} has only "
                           f"{plan.free_gb:.1f} GB free: use level 2 (weights dropped, reloaded on wake).")
    return plan


def weights_gb(profile, node: Node | None = None) -> float | None:
    from models_registry import services as registry

    try:
        estimate = registry.memory_estimate(profile=profile, node=node)
    except Exception:  # noqa: BLE001 - unknown weights: the plan says so instead of refusing
        return None
    return round(estimate.weights_bytes / 1e9, 2) if estimate.weights_bytes else None
