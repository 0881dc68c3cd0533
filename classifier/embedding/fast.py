"""The in-process fast path for a sentence-transformers model folder (BERT-style encoder + pooling).

Why not SentenceTransformer.encode: it tokenizes whole 4 KB texts on one core before truncating, pads
every batch to the longest text of an unsorted batch, and leaves the GPU idle while tokenizing. Here:
1. each text is cut to what the window can hold (embedders.cut_chars), then tokenized by the Rust
   tokenizer in parallel (encode_batch), truncated to `max_tokens`;
2. texts are sorted by token length so each batch pads little;
3. backend `torch`: on a GPU torch fp16, with the next chunk tokenized in a thread while the GPU works;
   on a CPU with bf16 instructions (AVX512-BF16 / AMX) torch bf16, else fp32. Backend `openvino` (the
   CPU path of both shipped embedders): OpenVINO with static int8 (NNCF, calibrated once, cached) or
   bf16 (`precision`) for files, run as asynchronous requests on parallel streams; backend `onnx`:
   ONNX Runtime dynamic int8. Both keep the
   fp32 graph for taxonomy labels (few, embedded once per version). On a GPU every backend runs torch
   fp16.
Pooling (mean or CLS) and normalization follow the folder's sentence-transformers config.
"""
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from classifier.embedding import e5_conversion, graph_export
from classifier.embedding.core import LABEL_KINDS, Embedder, EmbedderSpec, _normalize, padded

CHUNK = 4096
# A job gives a GPU embedder this many chunks per call: within a call each chunk is tokenized while the one
# before runs on the GPU; a call of one GPU batch cannot overlap at all (H100, perf/classifier.py: 4,269
# files/s in calls of 1,024 files against 11,260 in one call of 60,000).
JOB_CHUNKS = 4
GPU_BATCH = 1024
# On a CPU a batch holds at most this many padded tokens (16 files of 256): measured against 32 and 64
# files of 256 in perf/RESULTS.md.
CPU_BATCH_TOKENS = 4096


def _pooling_mode(model_dir: Path) -> str:
    conf = model_dir / "1_Pooling" / "config.json"
    if conf.exists():
        data = json.loads(conf.read_text())
        if data.get("pooling_mode_cls_token"):
            return "cls"
    return "mean"


class FastEmbedder(Embedder):
    def __init__(self, spec: EmbedderSpec, *, model_dir: Path, cache_dir: Path):
        from tokenizers import Tokenizer

        self.spec = spec
        self.model_dir = model_dir
        self.pooling = _pooling_mode(model_dir)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()  # batches are padded after length-sorting
        self.tokenizer.enable_truncation(max_length=spec.max_tokens)
        pad = self.tokenizer.token_to_id("[PAD]")
        self.pad_id = pad if pad is not None else (self.tokenizer.token_to_id("<pad>") or 0)
        self.device = self._pick_device(spec.device)
        # A GPU wants far larger batches than a CPU: at 1024 an H200 runs e5-small at 14,700 files/s
        # (forward only), at 256 at 9,200 (perf/classifier.py).
        self.batch_size = int(spec.extra.get("gpu_batch_size", GPU_BATCH)) if self.device == "cuda" else spec.batch_size
        if self.device == "cuda" or spec.backend == "torch":
            self._load_torch()
        elif spec.backend == "openvino":
            self._load_openvino(cache_dir)
        else:
            self._load_onnx(cache_dir)

    @staticmethod
    def _pick_device(device: str) -> str:
        if device != "auto":
            return device
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            return "cpu"

    @staticmethod
    def cpu_has_bf16() -> bool:
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
        return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))

    def _load_torch(self) -> None:
        import torch
        from transformers import AutoModel

        if self.device == "cuda":
            dtype = torch.float16
        else:
            wanted = self.spec.extra.get("cpu_dtype", "auto")
            bf16 = wanted == "bfloat16" or (wanted == "auto" and self.cpu_has_bf16())
            dtype = torch.bfloat16 if bf16 else torch.float32
        self.dtype = dtype
        self.torch_model = AutoModel.from_pretrained(str(self.model_dir), dtype=dtype,
                                                     attn_implementation="sdpa").to(self.device).eval()
        self.session = None

    def _artifact(self, cache_dir: Path, scheme: str, suffix: str) -> Path:
        weights = sorted(self.model_dir.glob("*.safetensors")) or sorted(self.model_dir.glob("*.bin"))
        stamp = "|".join(f"{w.name}:{w.stat().st_size}" for w in weights)
        key = f"{self.model_dir.resolve()}|{stamp}|{self.pooling}|{scheme}|{self.spec.max_tokens}"
        return cache_dir / f"{self.model_dir.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}-{scheme}{suffix}"

    def _fp32_graph(self, cache_dir: Path) -> Path:
        path = self._artifact(cache_dir, "fp32", ".onnx")
        if not path.exists():
            graph_export.onnx_fp32(self.model_dir, self.pooling, path)
        return path

    def _load_onnx(self, cache_dir: Path) -> None:
        import onnxruntime as ort

        int8 = self._artifact(cache_dir, "int8-ffn-down-fp32", ".onnx")
        with e5_conversion.locked(cache_dir / ".export.lock"):
            fp32 = self._fp32_graph(cache_dir)
            if not int8.exists():
                graph_export.onnx_int8(fp32, int8)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
        self.passage_session = ort.InferenceSession(str(fp32), options, providers=["CPUExecutionProvider"])
        self.torch_model = None

    def _load_openvino(self, cache_dir: Path) -> None:
        """precision "int8" (default): static int8 from NNCF, exported once, its float parts in bf16 where
        the CPU has it; "bf16": the fp32 graph run in bf16 where the CPU has it (else fp32), no export
        beyond ONNX. Measured (perf/classifier.py):
        MiniLM bf16 2.8x plain fp32 at 100% top-1 agreement, int8 3.9x at 97%; e5-small int8 3.7x its
        plain fp32 at 99%."""
        import openvino as ov

        precision = self.spec.extra.get("precision", "int8")
        if precision not in ("int8", "bf16", "fp32"):
            raise ValueError(f"Embedder {self.spec.key!r}: precision {precision!r} is not int8, bf16 or fp32.")
        int8 = self._artifact(cache_dir, "ov-int8-static", ".xml")
        with e5_conversion.locked(cache_dir / ".export.lock"):
            fp32 = self._fp32_graph(cache_dir)
            if precision == "int8" and not int8.exists():
                texts = self.prefixed(graph_export.calibration_texts(), "query")
                batches = graph_export.calibration_batches(self._tokenize, self.pad_id, texts)
                graph_export.openvino_int8(fp32, int8, batches)
        core = ov.Core()
        # Several streams of one thread each keep all cores busy through the short sequential parts of a
        # batch (layer norms, softmax) that one request on all threads would leave partly idle.
        config = {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_NUM_THREADS": self.threads,
                  "INFERENCE_PRECISION_HINT": "f32"}
        # Where the CPU has bf16, the int8 graph's remaining float parts (attention, softmax, layer norms,
        # GELU) run in bf16 too: e5-small 1.28x at a largest vector difference of 0.004 (perf/RESULTS.md).
        files_config = {**config, "INFERENCE_PRECISION_HINT": "bf16"} if (
            precision in ("bf16", "int8") and self.cpu_has_bf16()) else config
        self.ov_files = core.compile_model(core.read_model(str(int8 if precision == "int8" else fp32)), "CPU",
                                           files_config)
        # Taxonomy labels are few and embedded once per version: full precision.
        self.ov_labels = core.compile_model(core.read_model(str(fp32)), "CPU",
                                            {**config, "PERFORMANCE_HINT": "LATENCY"})
        self.session = self.passage_session = self.torch_model = None

    @property
    def threads(self) -> int:
        return int(self.spec.extra.get("threads", 0)) or (os.cpu_count() or 1)

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        return [enc.ids for enc in self.tokenizer.encode_batch(texts)]

    def _batches(self, ids: list[list[int]]):
        """Length-sorted batches of at most `batch_size` texts; on a CPU also of at most `cpu_batch_tokens`
        padded tokens, so a batch of long texts stays small enough for the caches and short texts still
        go many at a time."""
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        budget = self.cpu_batch_tokens if self.device == "cpu" else 0
        picked: list[int] = []
        for i in order:
            if picked and (len(picked) >= self.batch_size or (budget and (len(picked) + 1) * len(ids[i]) > budget)):
                yield picked, *padded([ids[j] for j in picked], self.pad_id)
                picked = []
            picked.append(i)
        if picked:
            yield picked, *padded([ids[j] for j in picked], self.pad_id)

    @property
    def cpu_batch_tokens(self) -> int:
        return int(self.spec.extra.get("cpu_batch_tokens", CPU_BATCH_TOKENS))

    def _run_openvino(self, batches, kind: str):
        import openvino as ov

        compiled = self.ov_labels if kind in LABEL_KINDS else self.ov_files
        queue = ov.AsyncInferQueue(compiled)
        done = []
        queue.set_callback(lambda request, picked: done.append((picked, request.get_output_tensor(0).data.copy())))
        for picked, matrix, mask in batches:
            queue.start_async({"input_ids": matrix, "attention_mask": mask}, picked)
        queue.wait_all()
        return done

    def _run_all(self, batches, kind: str):
        if getattr(self, "ov_files", None) is not None:
            return self._run_openvino(batches, kind)
        return [(picked, self._run(matrix, mask, kind)) for picked, matrix, mask in batches]

    def _run(self, matrix: np.ndarray, mask: np.ndarray, kind: str = "query") -> np.ndarray:
        if self.session is not None:
            session = self.passage_session if kind in LABEL_KINDS else self.session
            return session.run(None, {"input_ids": matrix, "attention_mask": mask})[0]
        import torch

        with torch.inference_mode():
            ids = torch.from_numpy(matrix).to(self.device, non_blocking=True)
            att = torch.from_numpy(mask).to(self.device, non_blocking=True)
            hidden = self.torch_model(input_ids=ids, attention_mask=att,
                                      token_type_ids=torch.zeros_like(ids)).last_hidden_state
            hidden = hidden.float()  # pool in fp32: sums of 256 half-precision values lose digits
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                m = att.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-3)
            pooled = torch.nn.functional.normalize(pooled, dim=1)
            return pooled.cpu().numpy()

    def embed(self, texts: list[str], *, kind: str) -> np.ndarray:
        texts = self.prefixed(texts, kind)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        chunks = [(s, texts[s:s + CHUNK]) for s in range(0, len(texts), CHUNK)]
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(self._tokenize, chunks[0][1]) if chunks else None
            for n, (start, _chunk) in enumerate(chunks):
                ids = pending.result()
                # Tokenize the next chunk while this one runs on the device.
                pending = pool.submit(self._tokenize, chunks[n + 1][1]) if n + 1 < len(chunks) else None
                for picked, vectors in self._run_all(self._batches(ids), kind):
                    out[[start + i for i in picked]] = vectors
        return _normalize(out)

    @property
    def job_batch(self) -> int:
        """On a GPU whole tokenization chunks (per call of 64 files it would sit mostly idle); 0 on a CPU."""
        return CHUNK * JOB_CHUNKS if self.device == "cuda" else 0

    @property
    def dim(self) -> int:
        if self.torch_model is not None:
            return int(self.torch_model.config.hidden_size)
        return int(json.loads((self.model_dir / "config.json").read_text())["hidden_size"])
