"""Stage 2: a small LLM picks among the top-5 candidates when the embedding margin is too thin.

The model gets the file excerpt and the candidates with their descriptions, and must answer JSON
constrained by a schema (`response_format` json_schema): the chosen code (one of the candidates), a
confidence 0-1 and a one-sentence reason. An invalid or failed answer is retried once; after that the
embedding top-1 is taken and marked `fallback`. A refusal (the caller's quota, key or allowed models,
see clients.Refused) is failed the same way, and the fallback's reason says what refused.
"""
import json
import logging
import math
import time
from dataclasses import dataclass, field

from classifier import clients
from classifier.models import TaxonomyNode

log = logging.getLogger(__name__)
EXCERPT_CHARS = 2000
EXAMPLES_PER_CLASS = 2
EXAMPLE_CHARS = 300
ATTEMPTS = 2
# A refusal asking to wait at most this long (requests per minute, concurrency) is waited out before the
# retry, so a job paces itself to its owner's limits instead of falling back for a minute's worth of files.
WAIT_MAX_S = 60
REFUSALS = {
    "tokens_per_day_exceeded": "tokens/day quota reached",
    "requests_per_minute_exceeded": "requests/min quota reached",
    "concurrent_requests_exceeded": "concurrent requests quota reached",
    "model_not_allowed": "model not allowed",
    "invalid_api_key": "API key refused",
    "revoked_api_key": "API key revoked",
    "expired_api_key": "API key expired",
    "missing_api_key": "no API key",
    "inactive_user": "owner deactivated",
}

SYSTEM = ("You sort documents into a Johnny-Decimal taxonomy. Pick exactly one of the candidate classes "
          "for the document. Answer only with JSON matching the schema.")


@dataclass
class Choice:
    code: str
    confidence: float
    reason: str


@dataclass
class Answer:
    choice: Choice | None
    problems: list[str] = field(default_factory=list)
    refusal: clients.Refused | None = None  # set when the last attempt was refused

    def fallback_reason(self) -> str:
        """Why the embedding's top-1 was taken instead, for the results table."""
        if self.refusal is not None:
            what = REFUSALS.get(self.refusal.error_code) or f"HTTP {self.refusal.status}"
            return f"rerank refused: {what} ({self.refusal.reason[:300]}): embedding top-1 taken"
        return "LLM answer invalid twice (" + "; ".join(self.problems)[:400] + "): embedding top-1 taken"


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


def examples_of(code: str, examples: dict[str, list[str]]) -> list[str]:
    """Up to EXAMPLES_PER_CLASS known members of a class (its own code's first, then those below it)."""
    own = list(examples.get(code, []))
    below = [t for c, texts in sorted(examples.items()) if c.startswith(code + ".") for t in texts]
    return [t[:EXAMPLE_CHARS] for t in (own + below)[:EXAMPLES_PER_CLASS]]


def prompt(excerpt: str, candidates: list[tuple[TaxonomyNode, float]],
           examples: dict[str, list[str]] | None = None) -> str:
    """The document, then each candidate with its description and, when the taxonomy has labeled
    examples of it, a few of them (few-shot: they show where the class's border lies)."""
    lines = [f"Document (file name and the start of its text):\n<<<\n{excerpt[:EXCERPT_CHARS]}\n>>>", "",
             "Candidate classes:"]
    for node, _score in candidates:
        line = f"- {node.code}: {node.label_path}"
        if node.description:
            line += f" — {node.description}"
        lines.append(line)
        lines += [f"    example: {' '.join(t.split())}" for t in examples_of(node.code, examples or {})]
    lines += ["", 'Answer {"code": <one candidate code>, "confidence": <0..1>, "reason": <one sentence>}.']
    return "\n".join(lines)


def request_body(*, model: str, excerpt: str, candidates: list[tuple[TaxonomyNode, float]], user: str,
                 examples: dict[str, list[str]] | None = None) -> dict:
    codes = [node.code for node, _ in candidates]
    return {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM},
                     {"role": "user", "content": prompt(excerpt, candidates, examples)}],
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
           user: str, examples: dict[str, list[str]] | None = None) -> Answer:
    """Ask the LLM, retrying once (after the wait a short refusal asks for). Never raises for the answer."""
    codes = [node.code for node, _ in candidates]
    body = request_body(model=model, excerpt=excerpt, candidates=candidates, user=user, examples=examples)
    answer = Answer(choice=None)
    for attempt in range(ATTEMPTS):
        try:
            reply = clients.chat_completion(url=url, api_key=api_key, body=body)
            content = reply["choices"][0]["message"]["content"]
            answer.choice, answer.refusal = parse_answer(content, codes), None
            return answer
        except clients.Refused as exc:
            answer.refusal = exc
            answer.problems.append(exc.reason)
            log.info("rerank refused: %s", exc.reason)
            if attempt + 1 < ATTEMPTS and exc.retry_after is not None and exc.retry_after <= WAIT_MAX_S:
                time.sleep(exc.retry_after)
        except (ValueError, KeyError, IndexError, TypeError, clients.UpstreamError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            answer.refusal = None
            answer.problems.append(message)
            log.info("rerank answer rejected: %s", message)
    return answer


@dataclass
class Access:
    """Where a run's rerank requests go, and the key they carry (empty: none)."""

    url: str
    api_key: str = ""


class Reranker:
    """One run's way to the LLM.

    After a refusal that the retry's short wait did not cure (tokens per day, a revoked key, a model not
    allowed), later files fall back at once with the same reason until the refusal's Retry-After has
    passed, instead of each being refused twice more.
    """

    def __init__(self, access: Access, *, model: str, user: str):
        self.access = access
        self.model = model
        self.user = user
        self.refusal: clients.Refused | None = None
        self.refused_until = 0.0
        self.examples: dict[str, list[str]] = {}  # code -> example texts, shown to the LLM

    def choose(self, *, excerpt: str, candidates: list[tuple[TaxonomyNode, float]]) -> Answer:
        if self.refusal is not None and time.monotonic() < self.refused_until:
            return Answer(choice=None, refusal=self.refusal)
        answer = choose(url=self.access.url, api_key=self.access.api_key, model=self.model, excerpt=excerpt,
                        candidates=candidates, user=self.user, examples=self.examples)
        if answer.refusal is not None:
            wait = answer.refusal.retry_after
            self.refusal = answer.refusal
            self.refused_until = time.monotonic() + (wait if wait is not None else math.inf)
        return answer
