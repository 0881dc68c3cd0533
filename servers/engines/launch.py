"""How a profile becomes an engine command line and environment (vLLM and TEI). Pure functions.

The argv is a list (never a shell string). A profile's extra flags are split with shlex and
checked against the flags the engine knows, so a typo is refused before anything is spawned.
"""
from __future__ import annotations

import shlex

from servers.engines import vllm_cli
from sparkportal.exceptions import ValidationFailed

# Set from the profile's own fields or by the supervisor: an extra flag must not fight them.
PORTAL_OWNED = {
    "--port", "--host", "--served-model-name", "--gpu-memory-utilization", "--device-memory-utilization", "--model",
    "--uds", "--max-model-len", "--dtype", "--tensor-parallel-size", "-tp", "--pipeline-parallel-size", "-pp",
}
REFUSED = {
    "--disable-log-stats": "--disable-log-stats removes every vllm:* metric, so the portal could not show "
                           "throughput or latency; remove it from the extra flags",
}

# text-embeddings-router 1.9.3 flags (router/src/main.rs); each also reads a same-named env var.
TEI_FLAGS = {
    "--model-id": True, "--revision": True, "--tokenization-workers": True, "--dtype": True, "--pooling": True,
    "--max-concurrent-requests": True, "--max-batch-tokens": True, "--max-batch-requests": True,
    "--max-client-batch-size": True, "--auto-truncate": False, "--default-prompt-name": True,
    "--default-prompt": True, "--dense-path": True, "--hf-api-token": True, "--hf-token": True,
    "--hostname": True, "--port": True, "-p": True, "--uds-path": True, "--huggingface-hub-cache": True,
    "--payload-limit": True, "--api-key": True, "--json-output": False, "--disable-spans": False,
    "--otlp-endpoint": True, "--otlp-service-name": True, "--prometheus-port": True, "--cors-allow-origin": True,
    "--served-model-name": True,
}
TEI_PORTAL_OWNED = {"--model-id", "--port", "-p", "--hostname", "--served-model-name", "--uds-path"}
# TEI reads every flag from an env var of the same name (PORT, HOSTNAME, MODEL_ID, ...): never let the
# worker's environment leak those in.
TEI_ENV_SCRUB = {flag.lstrip("-").replace("-", "_").upper() for flag in TEI_FLAGS if flag.startswith("--")} | {
    "AIP_HTTP_PORT",  # TEI's Vertex AI build takes its port from here, over --port
}


def split_flags(text: str) -> list[str]:
    try:
        return shlex.split(text or "")
    except ValueError as exc:
        raise ValidationFailed(f"The extra flags cannot be read ({exc}): check the quotes.",
                               code="bad_extra_flags") from exc


def check_vllm_flags(text: str) -> list[str]:
    """Split and validate a profile's extra vLLM flags; return the argv tail or raise with a clear message."""
    tokens = vllm_cli.normalize(split_flags(text))
    problems = []
    for token in tokens:
        name = token.split("=", 1)[0]
        if name in REFUSED:
            problems.append(REFUSED[name])
        elif name in PORTAL_OWNED:
            problems.append(f"{name} is set by the portal from the profile and the start form; remove it from the "
                            "extra flags")
    if problems:
        raise ValidationFailed("; ".join(problems) + ".", code="bad_extra_flags")
    parser = vllm_cli.build_parser(raise_errors=True)
    try:
        args, extras = parser.parse_known_args(tokens)
    except vllm_cli.FlagError as exc:
        raise ValidationFailed(f"vLLM would refuse the extra flags: {exc}.", code="bad_extra_flags") from exc
    unknown = [t for t in extras if t.startswith("-")]
    if unknown or args.model_tag is not None or extras:
        names = unknown or [t for t in [args.model_tag, *extras] if t]
        raise ValidationFailed(
            f"vLLM {vllm_cli.engine_version()} does not know {', '.join(names)}: check the spelling against "
            "`vllm serve --help=all`.", code="unknown_flag")
    return tokens


def check_tei_flags(text: str) -> list[str]:
    tokens = split_flags(text)
    index = 0
    while index < len(tokens):
        name = tokens[index].split("=", 1)[0]
        if name not in TEI_FLAGS:
            raise ValidationFailed(f"text-embeddings-router does not know {name}: check the spelling.",
                                   code="unknown_flag")
        if name in TEI_PORTAL_OWNED:
            raise ValidationFailed(f"{name} is set by the portal; remove it from the extra flags.",
                                   code="bad_extra_flags")
        index += 2 if TEI_FLAGS[name] and "=" not in tokens[index] else 1
    return tokens


def check_flags(engine: str, text: str) -> list[str]:
    return check_tei_flags(text) if engine == "tei" else check_vllm_flags(text)


def engine_env(*, base: dict, node, profile, server_id: int, instance: str, cuda_visible_devices: str,
               hf_home: str, engine: str) -> dict:
    """The child's whole environment, built explicitly (field notes, rules one and two)."""
    env = {k: v for k, v in base.items() if k in ("PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR")}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update({str(k): str(v) for k, v in (node.extra_env or {}).items()})
    env.update({str(k): str(v) for k, v in (getattr(profile, "extra_env", None) or {}).items()})
    prefix = (node.ld_library_path_prefix or "").strip(":")
    current = env.get("LD_LIBRARY_PATH", base.get("LD_LIBRARY_PATH", ""))
    if prefix or current:
        env["LD_LIBRARY_PATH"] = ":".join(p for p in (prefix, current) if p)
    if cuda_visible_devices:
        env["CUDA_VISIBLE_DEVICES"] = cuda_visible_devices
    env["HF_HOME"] = hf_home
    # Weights are downloaded beforehand by the model registry (with progress); the engine only reads the cache.
    env.setdefault("HF_HUB_OFFLINE", "1")
    if engine == "tei":
        for name in TEI_ENV_SCRUB:
            env.pop(name, None)
    env.update({
        # setproctitle (vLLM titles its EngineCore with it) otherwise overwrites /proc/<pid>/environ,
        # which would hide the marker below from the stop sweep.
        "SPT_NOENV": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "PYTHONUNBUFFERED": "1",
        "SPARKPORTAL_SERVER_ID": str(server_id),
        "SPARKPORTAL_INSTANCE": instance,
    })
    return env
