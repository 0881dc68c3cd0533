"""Secrets in an engine's command line, environment and output, replaced before they are stored or shown.

A flag or variable is secret when a part of its name (split on `-` and `_`) ends in key, token,
secret or password: `--api-key`, `--hf-token`, `HF_TOKEN`, `VLLM_API_KEY`, `AWS_SECRET_ACCESS_KEY`.
Parts such as `tokens` (`--max-num-batched-tokens`) or `tokenizer` are not. Only the value goes;
the name stays, so the reader still sees which flag was given. Logs are not rewritten: they are
for operators only.
"""
from __future__ import annotations

import re

HIDDEN = "***"
_WORDS = ("key", "token", "secret", "password", "passwd")
_NAME = r"[A-Za-z0-9_-]*(?:key|token|secret|password|passwd)"
# `--api-key VALUE`, `--api-key=VALUE`, `HF_TOKEN=VALUE`, `'api_key': 'VALUE'`, `Bearer VALUE`
_TEXT_PATTERNS = (
    re.compile(rf"(?i)(--{_NAME}(?:[=\s]+))(?!-)([^\s,'\"]+)"),
    re.compile(rf"(?i)\b({_NAME}=)([^\s,'\"]+)"),
    re.compile(rf"(?i)(['\"]{_NAME}['\"]\s*:\s*['\"])([^'\"]*)"),
    re.compile(r"(?i)(\bbearer\s+)(\S+)"),
)


def name_is_secret(name: str) -> bool:
    parts = re.split(r"[-_]+", name.lstrip("-").lower())
    return any(part.endswith(_WORDS) for part in parts if part)


def argv_redact(argv: list[str]) -> list[str]:
    """The command line with the values of secret flags (and secret NAME=value words) hidden."""
    out: list[str] = []
    hide_next = False
    for part in argv:
        if hide_next and not part.startswith("-"):
            out.append(HIDDEN)
            hide_next = False
            continue
        hide_next = False
        name, sep, _value = part.partition("=")
        if part.startswith("-") and name_is_secret(name):
            out.append(f"{name}={HIDDEN}" if sep else part)
            hide_next = not sep
        elif sep and not part.startswith("-") and name_is_secret(name) and re.fullmatch(r"[A-Za-z0-9_]+", name):
            out.append(f"{name}={HIDDEN}")
        else:
            out.append(part)
    return out


def env_redact(env: dict[str, str]) -> dict[str, str]:
    return {name: (HIDDEN if name_is_secret(name) else value) for name, value in env.items()}


def text_redact(text: str) -> str:
    """Free text (a process title, failure lines): secret flag, variable and dict values hidden."""
    for pattern in _TEXT_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + HIDDEN, text)
    return text
