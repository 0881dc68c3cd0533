"""The planner counts a sleeping server by the node's hardware: on unified memory (GB10) a level-1 sleeper stays
resident, level 2 frees it; on a discrete GPU level 1 frees the GPU but holds host RAM. Never over-commits."""
from datetime import timedelta

import pytest
from django.utils import timezone

from servers import planner
from servers.models import Server

DISCRETE = [{"index": 0, "memory_total_gb": 80.0, "memory_used_gb": 1.0, "unified_memory": False}]
UNIFIED = [{"index": 0, "memory_total_gb": 119.0, "memory_free_gb": 110.0, "unified_memory": True}]


@pytest.fixture
def on(node, make_profile):
    """A node of one kind of GPU memory, and a server of 0.5 on it in the given state."""
    def make(gpus, *, status="ready", level=None, port=8101, util=0.5, name="a") -> Server:
        node.gpu_facts = gpus
        node.host_facts = {"ram_total_gb": 128.0, "ram_used_gb": 20.0}
        node.last_heartbeat_at = timezone.now()
        node.save()
        profile = make_profile(name, enable_sleep_mode=True, gpu_memory_utilization=util)
        return Server.objects.create(node=node, profile=profile, served_model_name=name, port=port, status=status,
                                     sleep_level=level, gpu_memory_utilization=util, argv=["--enable-sleep-mode"],
                                     slept_at=node.last_heartbeat_at - timedelta(seconds=5) if level else None)
    return make


def _start(node, make_profile, util=0.5):
    return planner.plan_start(node=node, profile=make_profile("b", gpu_memory_utilization=util),
                              gpu_memory_utilization=util)


def test_a_level_1_sleeper_stays_resident_on_unified_memory(on, node, make_profile):
    on(UNIFIED, status="sleeping", level=1)
    assert planner.budget_used(node) == pytest.approx(0.5)
    plan = _start(node, make_profile)
    assert plan.code == "over_budget" and not plan.ok


@pytest.mark.parametrize("gpus,level", [(UNIFIED, 2), (DISCRETE, 1), (DISCRETE, 2)])
def test_level_2_anywhere_and_level_1_on_a_discrete_gpu_free_the_share(on, node, make_profile, gpus, level):
    on(gpus, status="sleeping", level=level)
    assert planner.budget_used(node) == 0.0
    assert _start(node, make_profile).ok


def test_waking_takes_back_the_share_unless_it_stayed_resident(on, node):
    sleeper = on(UNIFIED, status="sleeping", level=1)
    plan = planner.plan_wake(node=node, server=sleeper)
    assert plan.ok and plan.new == 0.0 and "stayed resident" in plan.notes[0]
    sleeper = on(DISCRETE, status="sleeping", level=1, port=8102, name="c")
    plan = planner.plan_wake(node=node, server=sleeper)
    assert plan.ok and plan.new == 0.5 and plan.need_gb == pytest.approx(40.0)


def test_a_swap_is_admitted_as_one_step_and_a_wake_alone_is_not(on, node):
    awake = on(DISCRETE, status="ready", name="awake")
    sleeper = on(DISCRETE, status="sleeping", level=1, port=8102, name="sleeper")
    alone = planner.plan_wake(node=node, server=sleeper)
    assert alone.code == "over_budget" and alone.after == pytest.approx(1.0)
    swap = planner.plan_wake(node=node, server=sleeper, asleep={awake.pk: 1})
    assert swap.ok and swap.after == pytest.approx(0.5)


def test_a_swap_on_unified_memory_needs_level_2_to_free_the_other(on, node):
    awake = on(UNIFIED, status="ready", name="awake")
    sleeper = on(UNIFIED, status="sleeping", level=2, port=8102, name="sleeper")
    assert not planner.plan_wake(node=node, server=sleeper, asleep={awake.pk: 1}).ok
    assert planner.plan_wake(node=node, server=sleeper, asleep={awake.pk: 2}).ok


def test_free_memory_counts_a_sleep_newer_than_the_heartbeat(on, node):
    sleeper = on([{"index": 0, "memory_total_gb": 80.0, "memory_used_gb": 75.0}], status="sleeping", level=1,
                 name="waking")
    other = Server.objects.create(node=node, served_model_name="other", port=8103, status="sleeping", sleep_level=2,
                                  gpu_memory_utilization=0.3, slept_at=timezone.now() + timedelta(seconds=1))
    plan = planner.plan_wake(node=node, server=sleeper)
    assert plan.free_gb == pytest.approx(5.0 + 24.0) and plan.need_gb == pytest.approx(40.0)
    assert plan.code == "not_enough_memory"
    Server.objects.filter(pk=other.pk).update(gpu_memory_utilization=0.45)  # 5 + 36 GB free: it fits
    assert planner.plan_wake(node=node, server=sleeper).ok
    Server.objects.filter(pk=other.pk).update(slept_at=node.last_heartbeat_at - timedelta(seconds=1))
    assert not planner.plan_wake(node=node, server=sleeper).ok  # the heartbeat's figure already has it


def test_level_1_on_a_discrete_gpu_holds_the_weights_in_host_ram(on, node, tmp_path):
    server = on(DISCRETE)
    with open(tmp_path / "model.safetensors", "wb") as fh:  # 120 GB of weights, sparse: no disk used
        fh.truncate(120 * 10**9)
    server.profile.source, server.profile.local_path = "local", str(tmp_path)
    server.profile.save()
    refused = planner.plan_sleep(node=node, server=server, level=1)
    assert refused.code == "not_enough_memory" and "use level 2" in refused.errors[0]
    assert refused.free_gb == pytest.approx(108.0) and refused.need_gb == pytest.approx(120.0)
    assert planner.plan_sleep(node=node, server=server, level=2).ok
    node.gpu_facts = UNIFIED
    node.save()
    assert planner.plan_sleep(node=node, server=server, level=1).ok  # nothing moves on unified memory
