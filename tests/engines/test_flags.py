"""One table for the engine flag rules: what a profile's extra flags may say, for vLLM and TEI alike.

Registry validation, the launch check and the command preview all go through engines.flags, so this table is
what every one of them accepts or refuses.
"""
import pytest

from engines import argv, environment, flags, vllm_cli

# engine, extra flags, admin?, the problem expected ("" when accepted), code
CASES = [
    ("vllm", "", False, "", ""),
    ("vllm", "--enable-auto-tool-choice --tool-call-parser hermes", False, "", ""),
    ("vllm", "--max_num_batched_tokens 2048", False, "", ""),  # vLLM accepts underscores
    ("vllm", "--hf-overrides '{\"rope_scaling\": null}'", False, "", ""),
    ("vllm", "--made-up-flag 3", False, "vLLM 0.33.0 does not know --made-up-flag", "unknown_flag"),
    ("vllm", "--enable-auto-tool-choice hermes", False, "does not know hermes", "unknown_flag"),
    ("vllm", "--scheduling-policy fifo", False, "invalid choice: 'fifo'", "bad_extra_flags"),
    ("vllm", "--max-num-batched-tokens lots", False, "invalid int value: 'lots'", "bad_extra_flags"),
    ("vllm", "--disable-log-stats", False, "removes every vllm:* metric", "bad_extra_flags"),
    ("vllm", "--port 9000", False, "--port is set by the portal", "bad_extra_flags"),
    ("vllm", "--uds /tmp/x.sock", False, "--uds is set by the portal", "bad_extra_flags"),
    ("vllm", "--gpu-memory-utilization 0.9", False, "use the field(s) gpu_memory_utilization", "bad_extra_flags"),
    ("vllm", "--quantization fp8", False, "use the field(s) quantization", "bad_extra_flags"),
    ("vllm", "-q fp8", False, "use the field(s) quantization", "bad_extra_flags"),
    ("vllm", "--kv-cache-dtype fp8", False, "use the field(s) kv_cache_dtype", "bad_extra_flags"),
    ("vllm", "--max-num-seqs 8", False, "use the field(s) max_num_seqs", "bad_extra_flags"),
    ("vllm", "--disable-prompt-tokens-details", True, "--disable-prompt-tokens-details is set by the portal",
     "bad_extra_flags"),
    ("vllm", "--enable-sleep-mode", True, "use the field(s) enable_sleep_mode", "bad_extra_flags"),
    ("vllm", "--served_model_name x", False, "use the field(s) served_model_name", "bad_extra_flags"),
    ("vllm", "--enable-log-requests; rm -rf /", False, "shell syntax (';')", "bad_extra_flags"),
    ("vllm", "--chat-template 'open", False, "could not be split", "bad_extra_flags"),
    ("vllm", "--trust-remote-code", False, "Only an admin may add --trust-remote-code", "admin_only"),
    ("vllm", "--trust-remote-code", True, "", ""),
    ("vllm", "--worker-cls my.Worker", False, "Only an admin may add --worker-cls", "admin_only"),
    ("vllm", "--middleware evil.app", False, "Only an admin may add --middleware", "admin_only"),
    ("vllm", "--tool-parser-plugin /tmp/p.py --tool-call-parser x", False, "Only an admin may add", "admin_only"),
    ("vllm", "--config /etc/vllm.yaml", False, "Only an admin may add --config", "admin_only"),
    ("vllm", "--api-key secret", False, "Only an admin may add --api-key", "admin_only"),
    ("vllm", "--enable-log-requests", False, "Only an admin may add --enable-log-requests", "admin_only"),
    ("vllm", "--enable-log-outputs", False, "Only an admin may add --enable-log-outputs", "admin_only"),
    ("tei", "--max-batch-tokens 32768 --auto-truncate", False, "", ""),
    ("tei", "--enable-prefix-caching", False, "Unknown TEI flag(s): --enable-prefix-caching", "unknown_flag"),
    ("tei", "--port 8080", False, "--port is set by the portal", "bad_extra_flags"),
    ("tei", "--hf-token x", False, "--hf-token is set by the portal", "bad_extra_flags"),
    ("tei", "--dtype float16", False, "use the field(s) dtype", "bad_extra_flags"),
    ("tei", "--otlp-endpoint http://x", False, "Only an admin may add --otlp-endpoint", "admin_only"),
]


@pytest.mark.parametrize("engine, text, admin, problem, code", CASES)
def test_the_flag_rules(engine, text, admin, problem, code):
    check = flags.check_extra_flags(engine, text, may_add_admin_only=admin)
    if not problem:
        assert check.problems == []
        return
    assert any(problem in p for p in check.problems), check.problems
    assert check.code == code


def test_an_admin_only_flag_already_on_the_profile_may_stay():
    kept = flags.admin_only_flag_names("vllm", "--trust-remote-code --enable-auto-tool-choice")
    check = flags.check_extra_flags("vllm", "--trust-remote-code", may_add_admin_only=False, allowed_admin_only=kept)
    assert check.problems == [] and check.admin_only == ["--trust-remote-code"]
    check = flags.check_extra_flags("vllm", "--trust-remote-code --worker-cls a.B", may_add_admin_only=False,
                                    allowed_admin_only=kept)
    assert check.problems == ["Only an admin may add --worker-cls: such flags make the engine load code, read "
                              "files or send data of the profile writer's choosing. Ask an admin, or remove them."]


@pytest.mark.parametrize("env, admin, problem", [
    ({"VLLM_LOGGING_LEVEL": "DEBUG"}, False, ""),
    ({"LD_PRELOAD": "/tmp/x.so"}, False, "Only an admin may set LD_PRELOAD"),
    ({"PYTHONPATH": "/tmp"}, False, "Only an admin may set PYTHONPATH"),
    ({"pythonstartup": "/tmp/x.py"}, False, "Only an admin may set pythonstartup"),
    ({"VLLM_PLUGINS": "evil"}, False, "Only an admin may set VLLM_PLUGINS"),
    ({"LD_PRELOAD": "/tmp/x.so"}, True, ""),
    ({"SPARKPORTAL_SERVER_ID": "7"}, True, "set by the portal itself"),
    ({"SPT_NOENV": "0"}, True, "set by the portal itself"),
    ({"VLLM_SERVER_DEV_MODE": "1"}, True, "set by the portal itself"),
    ({"1BAD": "x"}, True, "are not valid"),
    ({"X": ["a"]}, True, "must be text or numbers"),
    (["X=1"], True, "must be a JSON object"),
])
def test_the_environment_rules(env, admin, problem):
    problems, _code = flags.check_extra_env(env, may_add_admin_only=admin)
    if not problem:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_every_owned_refused_and_admin_only_vllm_flag_is_a_real_flag():
    known = vllm_cli.known_long_flags() | {n for s in vllm_cli.load_flags() for n in s["names"]}
    named = set(flags.OWNED["vllm"]) | set(flags.REFUSED["vllm"]) | flags.ADMIN_ONLY["vllm"]
    assert named - known == set()


def test_the_argv_takes_the_servers_share_and_port_not_the_profiles():
    spec = argv.ServeSpec(engine="vllm", model="Qwen/Qwen3-0.6B", served_model_name="q", gpu_memory_utilization=0.7,
                          extra_flags="--enable-auto-tool-choice")
    line = argv.serve_argv(spec, executable="/opt/vllm/bin/vllm", port=8123, gpu_memory_utilization=0.25)
    assert line[:3] == ["/opt/vllm/bin/vllm", "serve", "Qwen/Qwen3-0.6B"]
    assert line[line.index("--gpu-memory-utilization") + 1] == "0.25"
    assert line[line.index("--port") + 1] == "8123" and line[-1] == "--enable-auto-tool-choice"


def test_the_child_environment_keeps_the_marker_and_scrubs_tei_names():
    class Node:
        extra_env = {"PORT": "1", "NCCL_DEBUG": "INFO"}
        ld_library_path_prefix = "/opt/cuda/lib64"

    env = environment.child_env(base={"PATH": "/bin", "SECRET_KEY": "x", "PORT": "2"}, node=Node(), profile=None,
                                server_id=7, instance="abc", cuda_visible_devices="1", hf_home="/hf", engine="tei")
    assert env[environment.MARKER] == "7" and env[environment.INSTANCE] == "abc" and env["SPT_NOENV"] == "1"
    assert "SECRET_KEY" not in env and "PORT" not in env and env["NCCL_DEBUG"] == "INFO"
    assert env["LD_LIBRARY_PATH"] == "/opt/cuda/lib64" and env["CUDA_VISIBLE_DEVICES"] == "1"


class _Node:
    extra_env = {"VLLM_SERVER_DEV_MODE": "1"}  # an admin's node setting must not open the dev endpoints
    ld_library_path_prefix = ""


class _Profile:
    extra_env: dict = {}

    def __init__(self, sleep: bool):
        self.enable_sleep_mode = sleep


@pytest.mark.parametrize("sleep, engine, dev_mode", [(True, "vllm", "1"), (False, "vllm", None), (True, "tei", None)])
def test_the_dev_endpoints_open_exactly_with_the_profiles_sleep_mode(sleep, engine, dev_mode):
    env = environment.child_env(base={}, node=_Node(), profile=_Profile(sleep), server_id=1, instance="i",
                                cuda_visible_devices="", hf_home="/hf", engine=engine)
    assert env.get("VLLM_SERVER_DEV_MODE") == dev_mode
    spec = argv.ServeSpec(engine="vllm", model="m", served_model_name="m", enable_sleep_mode=sleep)
    assert ("--enable-sleep-mode" in argv.serve_argv(spec)) is sleep


def test_every_vllm_server_reports_its_cached_prompt_tokens():
    from engines.argv import ServeSpec, serve_argv

    argv = serve_argv(ServeSpec(engine="vllm", model="Qwen/Qwen3-0.6B", served_model_name="q"))
    assert "--enable-prompt-tokens-details" in argv
    assert "--enable-prompt-tokens-details" not in serve_argv(
        ServeSpec(engine="tei", model="BAAI/bge-m3", served_model_name="e"))
