"""Which engine flags and environment names a profile may carry: the one place that decides.

A profile's extra flags are split like a shell would (they never reach one) and checked against the flag
table of the engine (`engines.vllm_cli` for vLLM, `engines.tei` for TEI), then against four lists:

- OWNED: flags the portal sets itself from the profile's fields or the start form; a second copy in the
  extra flags would silently win or clash.
- REFUSED: flags that would break the portal (no metrics, say), refused for everyone.
- ADMIN_ONLY: flags that make the engine load or run code, read files or send data chosen by whoever
  writes them, as the portal's own user (which can read its secret key and database). Only an admin may
  add them; the registry audits it.
- Environment: names the portal sets itself (REFUSED_ENV, VLLM_SERVER_DEV_MODE included: it goes with
  `--enable-sleep-mode`, both from the profile's enable_sleep_mode) and names that change what code the child runs
  (ADMIN_ONLY_ENV, ADMIN_ONLY_ENV_PREFIXES).

`check_extra_flags` returns every problem at once, each saying what to write instead.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from engines import environment, tei, vllm_cli

SHELL_CHARS = (";", "|", "&", "`", "$(", ">", "<", "\n")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Flag -> the profile field that sets it (None: the portal sets it from the start form or itself).
OWNED: dict[str, dict[str, str | None]] = {
    "vllm": {
        "--model": None, "--port": None, "--host": None, "--uds": None,
        "--served-model-name": "served_model_name", "--dtype": "dtype", "--max-model-len": "max_model_len",
        "--gpu-memory-utilization": "gpu_memory_utilization", "--device-memory-utilization": "gpu_memory_utilization",
        "--tensor-parallel-size": "tensor_parallel_size", "-tp": "tensor_parallel_size",
        "--pipeline-parallel-size": "pipeline_parallel_size", "-pp": "pipeline_parallel_size",
        "--quantization": "quantization", "-q": "quantization", "--kv-cache-dtype": "kv_cache_dtype",
        "--enable-prefix-caching": "enable_prefix_caching", "--disable-prefix-caching": "enable_prefix_caching",
        "--max-num-seqs": "max_num_seqs", "--revision": "revision",
        "--enable-sleep-mode": "enable_sleep_mode", "--disable-sleep-mode": "enable_sleep_mode",
        # Always on: the usage ledger records cached prompt tokens from every answer.
        "--enable-prompt-tokens-details": None, "--disable-prompt-tokens-details": None,
        # The multi-node launch (engines/multinode.py): set per rank from the profile's placement.
        "--nnodes": "node_count", "-n": "node_count", "--node-rank": None, "-r": None, "--master-addr": None,
        "--master-port": None, "--headless": None, "--distributed-executor-backend": "node_count",
    },
    "tei": {
        "--model-id": None, "--port": None, "-p": None, "--hostname": None, "--uds-path": None,
        "--huggingface-hub-cache": None, "--served-model-name": "served_model_name", "--dtype": "dtype",
        "--revision": "revision", "--hf-token": None, "--hf-api-token": None,
    },
}

REFUSED: dict[str, dict[str, str]] = {
    "vllm": {
        "--disable-log-stats": "--disable-log-stats removes every vllm:* metric, so the portal could not show "
                               "throughput or latency; remove it from the extra flags",
    },
    "tei": {},
}

ADMIN_ONLY: dict[str, frozenset[str]] = {
    "vllm": frozenset({
        # Load Python code named by the flag.
        "--trust-remote-code", "--worker-cls", "--worker-extension-cls", "--middleware", "--tool-parser-plugin",
        "--reasoning-parser-plugin", "--io-processor-plugin", "--logits-processors", "--scheduler-cls",
        "--model-class-overrides", "--kv-transfer-config", "--kv-events-config", "--ec-transfer-config",
        "--weight-transfer-config", "--compilation-config", "--additional-config",
        # Read any file, or a file of flags that are not checked here.
        "--config", "--allowed-local-media-path", "--log-config-file", "--ssl-keyfile", "--ssl-certfile",
        "--ssl-ca-certs", "--download-dir",
        # Send requests or traces elsewhere, or lock the portal out of its own engine.
        "--otlp-traces-endpoint", "--tool-server", "--api-key", "--hf-token",
        # Write users' prompts and answers into the engine's log, which operators read (prompts are private).
        "--enable-log-requests", "--enable-log-outputs",
    }),
    "tei": frozenset({"--api-key", "--otlp-endpoint", "--dense-path"}),
}

# VLLM_SERVER_DEV_MODE opens vLLM's development endpoints (/sleep, /wake_up, /collective_rpc, ...): the portal
# sets it exactly when the profile's enable_sleep_mode is on (engines.environment.child_env), for its own worker.
REFUSED_ENV = frozenset({"SPARKPORTAL_SERVER_ID", "SPARKPORTAL_INSTANCE", "SPT_NOENV", "HF_HOME",
                         "VLLM_SERVER_DEV_MODE", *environment.NETWORK_ENV})
ADMIN_ONLY_ENV = frozenset({
    "PATH", "BASH_ENV", "ENV", "VLLM_PLUGINS", "VLLM_ALLOW_INSECURE_SERIALIZATION",
    "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "NODE_OPTIONS",
})
ADMIN_ONLY_ENV_PREFIXES = ("LD_", "PYTHON")


@dataclass
class FlagCheck:
    argv: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    admin_only: list[str] = field(default_factory=list)
    code: str = "bad_extra_flags"

    @property
    def ok(self) -> bool:
        return not self.problems


def engine_label(engine: str) -> str:
    return "TEI" if engine == "tei" else "vLLM"


def split(text: str) -> FlagCheck:
    """Split extra flags like a shell would; shell syntax and open quotes are problems."""
    check = FlagCheck()
    if not text or not text.strip():
        return check
    bad = sorted({c for c in SHELL_CHARS if c in text})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        check.problems.append(f"Extra flags contain shell syntax ({shown}): flags are passed to the engine as "
                              "arguments, never to a shell, so commands cannot be chained. Write only engine flags, "
                              "e.g. --enable-auto-tool-choice --tool-call-parser hermes.")
        return check
    try:
        check.argv = shlex.split(text)
    except ValueError as exc:
        check.problems.append(f"Extra flags could not be split ({exc}): close the quotes.")
    return check


def flag_names(engine: str, argv: list[str]) -> list[str]:
    """The flag names in an argv tail, in order (values skipped)."""
    if engine == "tei":
        return tei.split_known(argv)[0]
    return [t.split("=", 1)[0] for t in argv if t.startswith("-") and t not in ("-", "--") and not _is_number(t)]


def check_extra_flags(engine: str, text: str, *, may_add_admin_only: bool = True,
                      allowed_admin_only: frozenset[str] = frozenset()) -> FlagCheck:
    """Every problem of a profile's extra flags for `engine`.

    `may_add_admin_only=False` refuses admin-only flags except those in `allowed_admin_only` (the flags an
    admin already put on the profile: an operator's later edit keeps them).
    """
    check = split(text)
    if check.problems:
        return check
    if engine == "vllm":
        check.argv = vllm_cli.normalize(check.argv)
    names = flag_names(engine, check.argv)
    _check_owned_and_refused(engine, names, check)
    check.admin_only = sorted({n for n in names if n in ADMIN_ONLY.get(engine, frozenset())})
    added = [n for n in check.admin_only if n not in allowed_admin_only]
    if added and not may_add_admin_only:
        check.problems.append(f"Only an admin may add {', '.join(added)}: such flags make the engine load code, "
                              "read files or send data of the profile writer's choosing. Ask an admin, or remove "
                              "them.")
        check.code = "admin_only"
    if not check.problems:
        _check_known(engine, check)
    return check


def _check_owned_and_refused(engine: str, names: list[str], check: FlagCheck) -> None:
    owned = OWNED.get(engine, {})
    unique = list(dict.fromkeys(names))
    by_field = [n for n in unique if owned.get(n)]
    by_portal = [n for n in unique if n in owned and owned[n] is None]
    check.problems.extend(REFUSED[engine][n] for n in unique if n in REFUSED.get(engine, {}))
    if by_field:
        fields = ", ".join(sorted({owned[n] for n in by_field}))
        check.problems.append(f"Extra flags repeat {', '.join(by_field)}, which the profile sets itself: use the "
                              f"field(s) {fields} instead.")
    for name in by_portal:
        check.problems.append(f"{name} is set by the portal from the profile and the start form; remove it from "
                              "the extra flags")


def _check_known(engine: str, check: FlagCheck) -> None:
    if engine == "tei":
        _names, unknown = tei.split_known(check.argv)
        if unknown:
            check.problems.append(f"Unknown TEI flag(s): {', '.join(unknown)}. Check the spelling against "
                                  "`text-embeddings-router --help`.")
            check.code = "unknown_flag"
        return
    parser = vllm_cli.build_parser(raise_errors=True)
    try:
        args, extras = parser.parse_known_args(check.argv)
    except vllm_cli.FlagError as exc:
        check.problems.append(f"vLLM would refuse the extra flags: {exc}.")
        return
    if extras or args.model_tag is not None:
        names = [t for t in extras if t.startswith("-")] or [t for t in [args.model_tag, *extras] if t]
        check.problems.append(f"vLLM {vllm_cli.engine_version()} does not know {', '.join(names)}: check the "
                              "spelling against `vllm serve --help=all`.")
        check.code = "unknown_flag"


def check_extra_env(env, *, may_add_admin_only: bool = True, allowed_admin_only: frozenset[str] = frozenset()
                    ) -> tuple[list[str], str]:
    """(problems, code) of a profile's extra environment."""
    if not isinstance(env, dict):
        return ['Extra environment must be a JSON object of names to values, e.g. {"VLLM_LOGGING_LEVEL": "DEBUG"}.'],\
            "bad_extra_env"
    bad = [k for k in env if not isinstance(k, str) or not ENV_NAME_RE.match(k)]
    if bad:
        return [f"Environment names {bad!r} are not valid: use letters, digits and '_', not starting with a "
                "digit."], "bad_extra_env"
    problems = []
    nonstr = [k for k, v in env.items() if not isinstance(v, str | int | float) or isinstance(v, bool)]
    if nonstr:
        problems.append(f"Environment values of {nonstr!r} must be text or numbers.")
    refused = sorted(k for k in env if k in REFUSED_ENV)
    if refused:
        problems.append(f"{', '.join(refused)} {'is' if len(refused) == 1 else 'are'} set by the portal itself: "
                        "remove it from the extra environment.")
    added = [k for k in admin_only_env_names(env) if k not in allowed_admin_only]
    if added and not may_add_admin_only:
        problems.append(f"Only an admin may set {', '.join(added)}: such variables change which code the engine "
                        "runs or where it sends data. Ask an admin, or remove them.")
        return problems, "admin_only"
    return problems, "bad_extra_env"


def admin_only_env_names(env: dict) -> list[str]:
    return sorted(k for k in env if isinstance(k, str) and (k.upper() in ADMIN_ONLY_ENV or
                                                            k.upper().startswith(ADMIN_ONLY_ENV_PREFIXES)))


def admin_only_flag_names(engine: str, text: str) -> frozenset[str]:
    """The admin-only flags a stored profile already carries (an empty set if it cannot be split)."""
    check = split(text)
    return frozenset(n for n in flag_names(engine, check.argv) if n in ADMIN_ONLY.get(engine, frozenset()))


def dtype_choices() -> list[str]:
    return vllm_cli.choices("--dtype")


def kv_cache_dtype_choices() -> list[str]:
    return vllm_cli.choices("--kv-cache-dtype")


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
