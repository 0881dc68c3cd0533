"""Stage 2: a small LLM picks among the top-5 candidates when the embedding margin is too thin.

The model gets the file excerpt and the candidates with their descriptions, and must answer JSON
constrained by a schema (`response_format` json_schema): the chosen code (one of the candidates), a
confidence 0-1 and a one-sentence reason. An invalid or failed answer is retried once; after that the
embedding top-1 is taken and marked `fallback`.
"""
import json
import logging
from dataclasses import dataclass

from classifier import clients
from classifier.models import TaxonomyNode

log = logging.getLogger(__name__)
EXCERPT_CHARS = 2000
ATTEMPTS = 2

SYSTEM = ("You sort documents into a Johnny-Decimal taxonomy. Pick exactly one of the candidate classes "
          "for the document. Answer only with JSON matching the schema.")


@dataclass
class Choice:
    code: str
    confidence: float
    reason: str


def schema(codes: list[str]) -> dict:
    return {
        "type": "object",
        "properties": {
            "code": {"type": "string", "enum": codes},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "reason": {"type": "string", "maxLength": 300},
        },
        "required": ["code", "confidence", "reason"],
        "additionalProperties": False,
    }


def prompt(excerpt: str, candidates: list[tuple[TaxonomyNode, float]]) -> str:
    lines = [f"Document (file name and the start of its text):\n<<<\n{excerpt[:EXCERPT_CHARS]}\n>>>", "",
             "Candidate classes:"]
    for node, _score in candidates:
        line = f"- {node.code}: {node.label_path}"
        if node.description:
            line += f" — {node.description}"
        lines.append(line)
    lines += ["", 'Answer {"code": <one candidate code>, "confidence": <0..1>, "reason": <one sentence>}.']
    return "\n".join(lines)


def request_body(*, model: str, excerpt: str, candidates: list[tuple[TaxonomyNode, float]], user: str) -> dict:
    codes = [node.code for node, _ in candidates]
    return {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM},
                     {"role": "user", "content": prompt(excerpt, candidates)}],
        "temperature": 0,
        "max_tokens": 200,
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "classification", "schema": schema(codes), "strict": True}},
        "user": user,
    }


def parse_answer(content: str, codes: list[str]) -> Choice:
    """Validate an answer against the schema; ValueError says what was wrong."""
    try:
        data = json.loads(content)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    code = data.get("code")
    if code not in codes:
        raise ValueError(f"code {code!r} is not one of the candidates {codes}")
    confidence = data.get("confidence")
    if not isinstance(confidence, int | float) or isinstance(confidence, bool) or not 0 <= confidence <= 1:
        raise ValueError(f"confidence {confidence!r} is not a number between 0 and 1")
    reason = data.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("reason is missing")
    return Choice(code=code, confidence=float(confidence), reason=reason.strip()[:300])


def choose(*, url: str, api_key: str, model: str, excerpt: str, candidates: list[tuple[TaxonomyNode, float]],
           user: str) -> tuple[Choice | None, list[str]]:
    """Ask the LLM, retrying once. Returns (choice or None, the problems met along the way)."""
    codes = [node.code for node, _ in candidates]
    body = request_body(model=model, excerpt=excerpt, candidates=candidates, user=user)
    problems: list[str] = []
    for _attempt in range(ATTEMPTS):
        try:
            answer = clients.chat_completion(url=url, api_key=api_key, body=body)
            content = answer["choices"][0]["message"]["content"]
            return parse_answer(content, codes), problems
        except (ValueError, KeyError, IndexError, TypeError, clients.UpstreamError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            problems.append(message)
            log.info("rerank answer rejected: %s", message)
    return None, problems
