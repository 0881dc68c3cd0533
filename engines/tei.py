"""text-embeddings-router 1.9.3's flags (router/src/main.rs) and the environment it reads.

Each flag maps to whether it takes a value. TEI also reads every flag from an environment variable of the
same name (PORT, HOSTNAME, MODEL_ID, ...), so a child's environment must never carry those in by accident.
"""

FLAGS: dict[str, bool] = {
    "--model-id": True, "--revision": True, "--tokenization-workers": True, "--dtype": True, "--pooling": True,
    "--max-concurrent-requests": True, "--max-batch-tokens": True, "--max-batch-requests": True,
    "--max-client-batch-size": True, "--auto-truncate": False, "--default-prompt-name": True,
    "--default-prompt": True, "--dense-path": True, "--hf-api-token": True, "--hf-token": True,
    "--hostname": True, "--port": True, "-p": True, "--uds-path": True, "--huggingface-hub-cache": True,
    "--payload-limit": True, "--api-key": True, "--json-output": False, "--disable-spans": False,
    "--otlp-endpoint": True, "--otlp-service-name": True, "--prometheus-port": True, "--cors-allow-origin": True,
    "--served-model-name": True,
}

ENV_SCRUB = frozenset({flag.lstrip("-").replace("-", "_").upper() for flag in FLAGS if flag.startswith("--")} | {
    "AIP_HTTP_PORT",  # TEI's Vertex AI build takes its port from here, over --port
})


def split_known(tokens: list[str]) -> tuple[list[str], list[str]]:
    """(flag names as written, unknown flag names) of a TEI argv tail; values are skipped by the table."""
    names, unknown = [], []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        name = token.split("=", 1)[0]
        if not name.startswith("-"):
            unknown.append(name)  # a stray value: TEI takes no positional arguments
            index += 1
            continue
        names.append(name)
        if name not in FLAGS:
            unknown.append(name)
            index += 1
            continue
        index += 2 if FLAGS[name] and "=" not in token else 1
    return names, unknown
