"""Ray across nodes, as data: the `ray start` lines every node runs and the environment of every Ray process."""
from engines import argv as engine_argv
from engines import multinode, ray_cluster

SPEC = engine_argv.ServeSpec(engine="vllm", model="Qwen/Qwen3-0.6B", served_model_name="big", pipeline_parallel_size=2,
                             node_count=2, distributed_backend="ray")


def test_the_head_and_a_worker_run_ray_start_in_the_foreground_on_their_own_address():
    ray = ray_cluster.ray_executable("/opt/vllm/bin/vllm")
    assert ray == "/opt/vllm/bin/ray"
    assert ray_cluster.head_argv(ray, node_ip="10.0.0.1", port=29510, num_gpus=1) == [
        "/opt/vllm/bin/ray", "start", "--head", "--node-ip-address", "10.0.0.1", "--port", "29510", "--num-gpus", "1",
        "--block", "--disable-usage-stats", "--include-dashboard=false"]
    worker = ray_cluster.worker_argv(ray, head="10.0.0.1:29510", node_ip="10.0.0.2", num_gpus=1)
    assert worker[:4] == ["/opt/vllm/bin/ray", "start", "--address", "10.0.0.1:29510"]
    # Head-only flags on a worker node make `ray start` abort: a worker gets none of them.
    assert "--port" not in worker and not any(part.startswith("--include-dashboard") for part in worker)
    assert "--block" in worker and ray_cluster.is_ray_start(worker)


def test_every_ray_process_runs_without_the_memory_monitor_and_the_driver_finds_its_head():
    assert ray_cluster.RAY_ENV == {"RAY_memory_monitor_refresh_ms": "0"}
    assert ray_cluster.driver_env("10.0.0.1:29510") == {"RAY_memory_monitor_refresh_ms": "0",
                                                         "RAY_ADDRESS": "10.0.0.1:29510"}


def test_only_the_leader_runs_vllm_serve_with_the_ray_executor():
    leader = engine_argv.serve_argv(SPEC, port=8001, rank=multinode.Rank(0, "10.0.0.1", 29510))
    assert leader[leader.index("--distributed-executor-backend") + 1] == "ray"
    assert "--nnodes" not in leader and "--master-port" not in leader and "--headless" not in leader
    assert leader[leader.index("--pipeline-parallel-size") + 1] == "2"


def test_a_backend_other_than_mp_or_ray_is_refused_with_what_to_write():
    problems = multinode.placement_problems(multinode.Placement(nodes=2, pipeline_parallel_size=2, backend="slurm"))
    assert problems == ["The distributed executor backend is one of mp, ray, not slurm."]
