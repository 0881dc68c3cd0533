"""A stand-in for `vllm serve` (vLLM 0.33.0, or 0.26.0 as run for real) for machines without a GPU.

Run through the fake executable `tests/fakes/bin/vllm serve MODEL [flags]`, set as a test node's vLLM
executable, so the portal cannot tell it apart from the real engine. It follows the shared vLLM
reference (README, openai_api_samples.json, metrics_t0/t1.txt):

- parses every real `vllm serve` flag (table in engines/vllm_serve_flags.json, derived from
  `vllm serve --help=all`); an unknown flag or a bad choice exits 2 with argparse's message;
- prints vLLM's startup log lines on stdout (`(APIServer pid=N) INFO MM-DD HH:MM:SS [file.py:line] ...`)
  and uvicorn's on stderr, ending with `INFO:     Application startup complete.`;
- binds the port before "loading the model" (a taken port fails with `OSError: [Errno 98] Address
  already in use` right after the version line) and answers HTTP only once the engine is ready;
- starts multiprocessing's resource tracker (`python -B -c from multiprocessing.resource_tracker import
  main;main(N)`) and forks a child titled `VLLM::EngineCore` (setproctitle): three processes in the API
  server's process group and session, all with its environment, as real vLLM 0.26 runs;
- when the API server is SIGKILLed alone, the EngineCore and the tracker live on (reparented, still in the
  dead server's process group), as real vLLM 0.26 does: only a sweep by the marker frees the GPU;
- serves GET /health, /ping, /version, /load, /v1/models, /metrics; POST /v1/chat/completions,
  /v1/completions (stream and not, `usage`, `stream_options.include_usage`,
  `continuous_usage_stats`, OpenAI chunk format, chat answers that follow `response_format`'s JSON
  schema as structured outputs do), /tokenize, /detokenize, and /v1/embeddings and
  /rerank (/v1/rerank, /v2/rerank) with `--runner pooling` or `--convert embed`; `--api-key` guards the
  /v1 paths;
- exposes vLLM's real metric names, labels and histogram buckets through prometheus_client, and
  the counters move as it serves (tokens, prefix-cache queries/hits, TTFT, ITL, e2e, ...);
- with `--enable-sleep-mode` and `VLLM_SERVER_DEV_MODE=1`, sleeps and wakes as the real 0.26 did
  (tests/fakes/vllm_sleep.py: POST /sleep?level=N, POST /wake_up, GET /is_sleeping, the
  vllm:engine_sleep_state gauge, requests held while asleep, scripted delays);
- on SIGTERM logs `[shutdown] API server: shutdown triggered`, stops the engine child and exits 0.

Environment knobs (all optional):

FAKE_VLLM_STARTUP_DELAY_S   seconds the engine "loads the model" before the server answers (default 0.2)
FAKE_VLLM_FAIL              make startup fail the way vLLM does and exit 1:
                            `oom` (CUDA out of memory while loading weights), `no-kv-cache` (No available
                            memory for the cache blocks), `free-memory` (free memory below the requested
                            utilization), `missing-library` (libcusparseLt.so.0 not found), `wrong-wheel`
                            (undefined symbol: cuTensorMapEncodeTiled), `missing-flashinfer` (vLLM 0.26's real
                            lines when the flashinfer wheel is absent: ModuleNotFoundError in the EngineCore,
                            then the API server's `Failed core proc(s): {}`)
FAKE_VLLM_VERSION           the version it is (default 0.33.0). Below 0.33 it behaves as the real 0.26.0 did:
                            `Model loading took X GiB and Y seconds`, no admission_rejections,
                            prompt_tokens_cached_by_source or request_num_preemptions families, and `vllm bench
                            serve` drops latencies/queue_times without --save-detailed. The version probe reads
                            the package metadata: point the node's PYTHONPATH at tests/fakes/site-0.26 to match.
FAKE_VLLM_IGNORE_SIGTERM=1  the API server ignores SIGTERM (only SIGKILL stops it)
FAKE_VLLM_ENGINE_SETSID=1   the EngineCore child leaves the process group (setsid), as vLLM 0.33's source
                            suggests (not observed on 0.26)
FAKE_VLLM_TTFT_S            seconds before the first token of each request (default 0)
FAKE_VLLM_TOKEN_DELAY_S     seconds between tokens (default 0)
FAKE_VLLM_OUTPUT_TOKENS     length of an answer that ends with finish_reason "stop" (default 12)
FAKE_VLLM_BREAK_AFTER_TOKENS  drop the connection of a stream after this many tokens (an engine lost mid-answer)
FAKE_VLLM_EXIT_AFTER_S      once ready, die with exit status 1 after this many seconds (an engine crash)
FAKE_VLLM_LOG_LINES_PER_S   once ready, write this many extra log lines per second on stdout
FAKE_VLLM_WEIGHTS_GIB       weights size printed in "Model loading took ... GiB" (default 1.5)
FAKE_VLLM_KV_CACHE_GIB      printed in "Available KV cache memory: ... GiB" (default 10.0)
FAKE_VLLM_RENDEZVOUS_TIMEOUT_S, FAKE_VLLM_PEER_TIMEOUT_S: the multi-node launch (tests/fakes/vllm_multinode.py:
                            `--nnodes` above 1 joins a real torch.distributed gloo group at --master-addr/port)
FAKE_VLLM_RAY_*             `--distributed-executor-backend ray` joins the Ray cluster at RAY_ADDRESS and waits for
                            its GPUs (tests/fakes/vllm_ray.py; the fake `ray` CLI is tests/fakes/ray_cli.py)
FAKE_VLLM_REJECT_FLAGS      comma-separated flags this "older vLLM" does not know (argparse error, exit 2), for
                            a node whose engine lags behind the portal's flag table
"""
from __future__ import annotations

import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

VERSION = os.environ.get("FAKE_VLLM_VERSION") or "0.33.0"
ENGINE_TITLE = "VLLM::EngineCore"
MISSING_FLASHINFER = Path(__file__).with_name("vllm_026_missing_flashinfer.log")


def version_tuple(version: str = VERSION) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


# What the real 0.26.0 did; versions between 0.26 and 0.33 were not observed and get 0.26's behaviour.
AS_026 = version_tuple() < (0, 33)


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def log(proc: str, level: str, where: str, message: str, *, stream=None) -> None:
    stamp = time.strftime("%m-%d %H:%M:%S")
    (stream or sys.stdout).write(f"({proc} pid={os.getpid()}) {level} {stamp} [{where}] {message}\n")


def uvicorn(message: str) -> None:
    sys.stderr.write(f"INFO:     {message}\n")


def parse_args(argv: list[str]):
    from engines import vllm_cli

    parser = vllm_cli.build_parser(prog="vllm serve")
    argv = vllm_cli.normalize(argv)
    rejected = set(filter(None, os.environ.get("FAKE_VLLM_REJECT_FLAGS", "").split(",")))
    unknown = [arg for arg in argv if arg.split("=", 1)[0] in rejected]
    args, extras = parser.parse_known_args([arg for arg in argv if arg not in unknown])
    extras = unknown + extras
    if extras:
        # vLLM's top-level parser reports leftovers under the `vllm` program name.
        sys.stderr.write("usage: vllm [-h] [-v] {chat,complete,serve,launch,bench,collect-env,run-batch} ...\n")
        sys.stderr.write(f"vllm: error: unrecognized arguments: {' '.join(extras)}\n")
        sys.exit(2)
    return args


def max_model_len_of(value: str | None) -> int:
    if not value or value in ("-1", "auto"):
        return 8192
    text = value.strip()
    factor = 1
    if text[-1] in "kK":
        factor, text = 1000 if text[-1] == "k" else 1024, text[:-1]
    elif text[-1] in "mM":
        factor, text = 1000**2 if text[-1] == "m" else 1024**2, text[:-1]
    return int(float(text) * factor)


class Config:
    def __init__(self, args):
        self.model = args.model_tag or args.model or "Qwen/Qwen3-0.6B"
        self.served = list(args.served_model_name or [self.model])
        self.host = args.host
        self.port = args.port if args.port is not None else 8000
        self.max_model_len = max_model_len_of(args.max_model_len)
        self.gpu_memory_utilization = args.gpu_memory_utilization if args.gpu_memory_utilization else 0.92
        self.api_keys = list(args.api_key or ([os.environ["VLLM_API_KEY"]] if os.environ.get("VLLM_API_KEY") else []))
        self.force_usage = bool(args.enable_force_include_usage)
        self.pooling = args.runner == "pooling" or args.convert == "embed"
        self.log_stats = not args.disable_log_stats
        self.access_log = args.disable_uvicorn_access_log is not True
        self.quiet_paths = set((args.disable_access_log_for_endpoints or "").split(",")) - {""}
        self.enable_prefix_caching = args.enable_prefix_caching is not False
        self.enable_sleep_mode = bool(args.enable_sleep_mode)
        self.block_size = int(args.block_size or 16)
        self.max_num_seqs = int(args.max_num_seqs or 0)  # 0: no cap (vLLM's default is in the hundreds)
        self.prompt_tokens_details = bool(args.enable_prompt_tokens_details)
        self.kv_gib = _env_float("FAKE_VLLM_KV_CACHE_GIB", 10.0)
        self.weights_gib = _env_float("FAKE_VLLM_WEIGHTS_GIB", 1.5)
        self.num_gpu_blocks = max(1, int(self.kv_gib * 1024 * 64 / self.block_size))
        self.non_default = {k: v for k, v in vars(args).items() if v is not None}


# --- startup ------------------------------------------------------------------------------------------

FAILURES = {
    "oom": [
        "ERROR {t} [gpu_model_runner.py:4312] Failed to load model - not enough GPU memory. Try lowering "
        "--gpu-memory-utilization to free memory for weights, increasing --tensor-parallel-size, or using "
        "--quantization. See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more tips. "
        "(original error: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB "
        "of which 1.06 GiB is free.)",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
        "79.19 GiB of which 1.06 GiB is free. Including non-PyTorch memory, this process has 77.85 GiB memory in use.",
    ],
    "no-kv-cache": [
        "ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when "
        "initializing the engine. See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more "
        "details.",
    ],
    "free-memory": [
        "ValueError: Free memory on device cuda:0 (12.4/79.19 GiB) on startup is less than desired GPU memory "
        "utilization ({util}, {want:.2f} GiB). Decrease GPU memory utilization or reduce GPU memory used by other "
        "processes.",
    ],
}

IMPORT_FAILURES = {
    "missing-library": "ImportError: libcusparseLt.so.0: cannot open shared object file: No such file or directory",
    "wrong-wheel": "ImportError: /opt/vllm/lib/python3.12/site-packages/torch/lib/libtorch_cuda.so: "
                   "undefined symbol: cuTensorMapEncodeTiled",
}


def print_traceback(lines: list[str], *, frames: list[str]) -> None:
    out = ["Traceback (most recent call last):"]
    for frame in frames:
        out.append(f"  File \"{frame}")
    out.extend(lines)
    sys.stderr.write("\n".join(out) + "\n")


def bind_socket(cfg: Config) -> socket.socket:
    host = cfg.host or "0.0.0.0"
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, cfg.port))
    except OSError as exc:
        print_traceback([f"OSError: [Errno {exc.errno}] {exc.strerror}"], frames=[
            '/opt/vllm/bin/vllm", line 10, in <module>',
            '/opt/vllm/lib/python3.12/site-packages/vllm/entrypoints/launchers/launcher.py", line 88, '
            "in setup_server",
        ])
        sys.exit(1)
    sock.set_inheritable(False)
    return sock


def real_lines(part: str) -> list[str]:
    """One process's part ("EngineCore" or "APIServer") of the recorded 0.26 failure, with this pid filled in."""
    lines, current = [], ""
    for line in MISSING_FLASHINFER.read_text().splitlines():
        if line.startswith("# --- "):
            current = line[6:]
        elif current == part:
            lines.append(line.replace("@PID@", str(os.getpid())).replace("@TIME@", time.strftime("%m-%d %H:%M:%S"))
                         .replace("@WTIME@", time.strftime("%m%d %H:%M:%S.000000000")))
    return lines


def engine_core(cfg: Config, ready_fd: int, sock: socket.socket, setsid: bool) -> None:
    """Body of the forked EngineCore child. Never returns."""
    try:
        sock.close()  # the port must free as soon as the API server is gone
        if setsid:
            os.setsid()
        try:
            import setproctitle

            setproctitle.setproctitle(ENGINE_TITLE)
        except ImportError:
            pass
        stop = {"now": False}

        def on_term(signum, frame):
            log("EngineCore", "INFO", "core.py:1012", "[shutdown] EngineCore: trigger received signal=SIGTERM")
            sys.stdout.flush()
            stop["now"] = True

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        log("EngineCore", "INFO", "core.py:101", f"Initializing a V1 LLM engine (v{VERSION}) with config: "
            f"model='{cfg.model}', max_seq_len={cfg.max_model_len}, "
            f"gpu_memory_utilization={cfg.gpu_memory_utilization}")
        log("EngineCore", "INFO", "gpu_model_runner.py:4120", f"Starting to load model {cfg.model}...")
        sys.stdout.flush()
        delay = _env_float("FAKE_VLLM_STARTUP_DELAY_S", 0.2)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not stop["now"]:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        if stop["now"]:
            os._exit(0)
        failure = os.environ.get("FAKE_VLLM_FAIL", "")
        if failure in FAILURES:
            stamp = time.strftime("%m-%d %H:%M:%S")
            lines = [line.format(t=stamp, util=cfg.gpu_memory_utilization, want=cfg.gpu_memory_utilization * 79.19)
                     for line in FAILURES[failure]]
            log("EngineCore", "ERROR", "core.py:1102", "EngineCore failed to start.")
            sys.stdout.flush()
            print_traceback(lines, frames=['/opt/vllm/lib/python3.12/site-packages/vllm/v1/engine/core.py", line 1093, '
                                           "in run_engine_core"])
            sys.stderr.flush()
            os._exit(1)
        log("EngineCore", "INFO", "default_loader.py:291", f"Loading weights took {delay:.2f} seconds")
        if AS_026:
            log("EngineCore", "INFO", "model_runner.py:305",
                f"Model loading took {cfg.weights_gib:.1f} GiB and {delay:.6f} seconds")
        else:
            log("EngineCore", "INFO", "gpu_model_runner.py:4202",
                f"Model loading took {cfg.weights_gib:.4f} GiB memory and {delay:.6f} seconds")
        if failure == "missing-flashinfer":  # the V2 sampler imports flashinfer after the weights are loaded
            sys.stdout.write("\n".join(real_lines("EngineCore")) + "\n")
            sys.stdout.flush()
            os._exit(1)
        log("EngineCore", "INFO", "gpu_worker.py:376", f"Available KV cache memory: {cfg.kv_gib:.2f} GiB")
        tokens = cfg.num_gpu_blocks * cfg.block_size
        log("EngineCore", "INFO", "kv_cache_utils.py:1291", f"GPU KV cache size: {tokens:,} tokens")
        log("EngineCore", "INFO", "kv_cache_utils.py:1296", f"Maximum concurrency for {cfg.max_model_len:,} tokens "
            f"per request: {tokens / cfg.max_model_len:.2f}x")
        log("EngineCore", "INFO", "gpu_model_runner.py:5012", "Graph capturing finished in 0 secs, took 0.00 GiB")
        log("EngineCore", "INFO", "core.py:278", f"init engine (profile, create kv cache, warmup model) took "
            f"{delay:.2f} seconds")
        sys.stdout.flush()
        os.write(ready_fd, b"R")
        os.close(ready_fd)
        while not stop["now"]:  # outlives a SIGKILLed API server, as the real one does
            time.sleep(0.1)
        os._exit(0)
    except BaseException:  # noqa: BLE001 - a forked child must never return into the parent's code
        traceback.print_exc()
        os._exit(1)


def start_engine(cfg: Config, sock: socket.socket) -> int:
    """Start the resource tracker, fork the EngineCore child and wait until it reports ready; exit 1 like vLLM
    if it dies."""
    from multiprocessing import resource_tracker

    # vLLM's multiprocessing starts this child: it lives until every holder of its pipe (this process and
    # the forked EngineCore) is gone, so it too survives a SIGKILLed API server.
    resource_tracker.ensure_running()
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        engine_core(cfg, write_fd, sock, os.environ.get("FAKE_VLLM_ENGINE_SETSID") == "1")
    os.close(write_fd)
    data = os.read(read_fd, 1)
    os.close(read_fd)
    if data != b"R":
        os.waitpid(pid, 0)
        if os.environ.get("FAKE_VLLM_FAIL") == "missing-flashinfer":
            sys.stderr.write("\n".join(real_lines("APIServer")) + "\n")
            sys.exit(1)
        print_traceback(["RuntimeError: Engine core initialization failed. See root cause above. "
                         "Failed core proc(s): {'EngineCore': 1}"],
                        frames=['/opt/vllm/lib/python3.12/site-packages/vllm/v1/engine/utils.py", line 1021, '
                                "in wait_for_engine_startup"])
        sys.exit(1)
    return pid


def main(argv: list[str]) -> int:
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    failure = os.environ.get("FAKE_VLLM_FAIL", "")
    if failure in IMPORT_FAILURES:
        print_traceback([IMPORT_FAILURES[failure]], frames=[
            '/opt/vllm/bin/vllm", line 5, in <module>',
            '/opt/vllm/lib/python3.12/site-packages/torch/__init__.py", line 424, in <module>'])
        return 1
    args = parse_args(argv)
    cfg = Config(args)
    if os.environ.get("FAKE_VLLM_IGNORE_SIGTERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    log("APIServer", "INFO", "utils.py:299", f"vLLM server version {VERSION}, serving model {cfg.model}")
    log("APIServer", "INFO", "utils.py:233", f"non-default args: {cfg.non_default}")
    if int(args.nnodes or 1) > 1:
        from tests.fakes import vllm_multinode

        store = vllm_multinode.rendezvous(args)
        if args.headless:
            return vllm_multinode.follow(store, args)
    if args.distributed_executor_backend == "ray":
        from tests.fakes import vllm_ray

        vllm_ray.join(args)
    sock = bind_socket(cfg)
    engine_pid = start_engine(cfg, sock)
    from tests.fakes import vllm_http

    return vllm_http.run(cfg, sock, engine_pid)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
