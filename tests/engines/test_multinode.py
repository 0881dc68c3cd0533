"""vLLM's multi-node launch as the portal builds it: a rank's argv, the flags it owns, a rank's network."""
import pytest

from engines import argv as engine_argv
from engines import environment, flags, multinode, vllm_cli

SPEC = engine_argv.ServeSpec(engine="vllm", model="Qwen/Qwen3-32B", served_model_name="big", tensor_parallel_size=1,
                             pipeline_parallel_size=2, node_count=2)


def test_the_multi_node_flags_are_vllms_own():
    known = vllm_cli.known_long_flags()
    for flag in multinode.FLAGS:
        assert flag in known, flag
    defaults = {n: s["default"] for s in vllm_cli.load_flags() for n in s["names"]}
    assert defaults["--nnodes"] == "1" and defaults["--master-port"] == "29501"
    assert defaults["--master-addr"] == "127.0.0.1" and defaults["--node-rank"] == "0"


def test_leader_and_follower_argv():
    leader = engine_argv.serve_argv(SPEC, port=8001, rank=multinode.Rank(0, "10.0.0.1", 29600))
    follower = engine_argv.serve_argv(SPEC, port=8001, rank=multinode.Rank(1, "10.0.0.1", 29600))
    tail = ["--pipeline-parallel-size", "2", "--distributed-executor-backend", "mp", "--nnodes", "2"]
    assert " ".join(tail) in " ".join(leader)
    assert leader[leader.index("--node-rank") + 1] == "0" and "--headless" not in leader
    assert follower[follower.index("--node-rank") + 1] == "1"
    assert "--headless" in follower
    assert follower[follower.index("--master-addr") + 1] == "10.0.0.1"
    assert follower[follower.index("--master-port") + 1] == "29600"
    # vLLM's own parser (the flag table) takes every rank's command line.
    for argv in (leader, follower):
        args, extras = vllm_cli.build_parser(raise_errors=True).parse_known_args(argv[2:])
        assert not extras and str(args.nnodes) == "2"


def test_a_multi_node_spec_needs_its_rank():
    with pytest.raises(ValueError, match="spans 2 nodes"):
        engine_argv.serve_argv(SPEC)


def test_single_node_argv_is_unchanged():
    single = engine_argv.ServeSpec(engine="vllm", model="m", served_model_name="m", pipeline_parallel_size=2)
    argv = engine_argv.serve_argv(single)
    assert "--nnodes" not in argv and argv[argv.index("--distributed-executor-backend") + 1] == "ray"


@pytest.mark.parametrize(("nodes", "tp", "pp", "ok"), [(2, 1, 2, True), (2, 2, 1, True), (2, 1, 3, False),
                                                      (0, 1, 1, False), (4, 2, 2, True), (17, 1, 17, False)])
def test_placement_rules(nodes, tp, pp, ok):
    placement = multinode.Placement(nodes=nodes, tensor_parallel_size=tp, pipeline_parallel_size=pp)
    assert (multinode.placement_problems(placement) == []) is ok


def test_uneven_placement_says_what_to_write():
    problems = multinode.placement_problems(multinode.Placement(nodes=2, pipeline_parallel_size=3))
    assert "do not split evenly over 2 nodes" in problems[0] and "pipeline_parallel_size=2" in problems[0]


@pytest.mark.parametrize("flag", ["--nnodes 2", "-n 2", "--node-rank 1", "--master-addr 10.0.0.1",
                                  "--master-port 29600", "--headless", "--distributed-executor-backend ray"])
def test_a_profile_may_not_pass_the_multi_node_flags(flag):
    check = flags.check_extra_flags("vllm", flag)
    assert not check.ok
    assert flag.split()[0] in check.problems[0]


@pytest.mark.parametrize("name", environment.NETWORK_ENV)
def test_a_profile_may_not_set_the_network_environment(name):
    problems, _code = flags.check_extra_env({name: "x"})
    assert problems and name in problems[0]


class _Node:
    extra_env = {"NCCL_SOCKET_IFNAME": "eth9", "NCCL_NVLS_ENABLE": "1"}
    ld_library_path_prefix = ""


def test_rank_environment_wins_over_the_nodes_extra_environment():
    network = environment.network_env(interface="enp1s0f0np0", host_ip="10.0.0.2")
    env = environment.child_env(base={}, node=_Node(), profile=None, server_id=3, instance="i",
                                cuda_visible_devices="0", hf_home="/h", engine="vllm", network=network)
    assert env["NCCL_SOCKET_IFNAME"] == env["GLOO_SOCKET_IFNAME"] == "enp1s0f0np0"
    assert env["VLLM_HOST_IP"] == "10.0.0.2" and env["NCCL_NVLS_ENABLE"] == "0"
    assert environment.network_env(interface="", host_ip="", nvls=True) == {"NCCL_NVLS_ENABLE": "1"}
