"""The in-process fast path for a sentence-transformers model folder (BERT-style encoder + pooling).

Why not SentenceTransformer.encode: it tokenizes whole 4 KB texts on one core before truncating, pads
every batch to the longest text of an unsorted batch, and leaves the GPU idle while tokenizing. Here:
1. each text is cut to what the window can hold (embedders.cut_chars), then tokenized by the Rust
   tokenizer in parallel (encode_batch), truncated to `max_tokens`;
2. texts are sorted by token length so each batch pads little;
3. backend `torch`: on a GPU torch fp16, with the next chunk tokenized in a thread while the GPU works;
   on a CPU with bf16 instructions (AVX512-BF16 / AMX) torch bf16, else fp32. Backend `onnx` (CPUs
   without bf16): an int8 ONNX Runtime graph for files (dynamic quantization, exported once and
   cached) and the fp32 graph for taxonomy labels (few, embedded once per version).
Pooling (mean or CLS) and normalization follow the folder's sentence-transformers config.
"""
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from classifier.embedcore import Embedder, EmbedderSpec, _normalize

CHUNK = 4096


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
        if self.device == "cuda" or spec.backend == "torch":
            self._load_torch()
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

    def _onnx_path(self, cache_dir: Path) -> Path:
        weights = sorted(self.model_dir.glob("*.safetensors")) or sorted(self.model_dir.glob("*.bin"))
        stamp = "|".join(f"{w.name}:{w.stat().st_size}" for w in weights)
        scheme = "int8-ffn-down-fp32"
        digest = hashlib.sha256(f"{self.model_dir.resolve()}|{stamp}|{self.pooling}|{scheme}".encode()).hexdigest()[:16]
        return cache_dir / f"{self.model_dir.name}-{digest}-int8.onnx"

    def _load_onnx(self, cache_dir: Path) -> None:
        import onnxruntime as ort

        path = self._onnx_path(cache_dir)
        if not path.exists() or not path.with_suffix(".fp32.onnx").exists():
            self._export_int8(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(self.spec.extra.get("threads", 0)) or (os.cpu_count() or 1)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.passage_session = ort.InferenceSession(str(path.with_suffix(".fp32.onnx")), options,
                                                    providers=["CPUExecutionProvider"])
        self.torch_model = None

    def _export_int8(self, path: Path) -> None:
        """Export encoder + pooling to ONNX, then quantize the MatMul weights to int8 per channel.

        The FFN down-projections stay fp32: their inputs (after GELU) carry the outliers that make BERT's
        int8 embeddings drift; keeping them lifts top-1 agreement with fp32 from ~94% to ~98% while
        keeping most of the speed (perf/classifier.py)."""
        import onnx
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from transformers import AutoModel

        encoder = AutoModel.from_pretrained(str(self.model_dir), dtype=torch.float32).eval()
        pooling = self.pooling

        class Pooled(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = encoder

            def forward(self, input_ids, attention_mask):
                hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                      token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
                if pooling == "cls":
                    return hidden[:, 0]
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

        path.parent.mkdir(parents=True, exist_ok=True)
        fp32 = path.with_suffix(".fp32.onnx")  # kept: labels are embedded with it
        ids = torch.ones(2, 8, dtype=torch.long)
        torch.onnx.export(Pooled(), (ids, torch.ones_like(ids)), str(fp32), input_names=["input_ids", "attention_mask"],
                          output_names=["embedding"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                                        "embedding": {0: "batch"}})
        tmp = path.with_suffix(".tmp.onnx")
        matmuls = [n.name for n in onnx.load(str(fp32), load_external_data=False).graph.node if n.op_type == "MatMul"]
        keep_fp32 = [n for n in matmuls if "/output/dense" in n and "/attention/" not in n]
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"], nodes_to_exclude=keep_fp32)
        tmp.replace(path)

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        return [enc.ids for enc in self.tokenizer.encode_batch(texts)]

    def _batches(self, ids: list[list[int]]):
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), self.spec.batch_size):
            picked = order[start:start + self.spec.batch_size]
            width = max(len(ids[i]) for i in picked)
            matrix = np.full((len(picked), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(picked), width), dtype=np.int64)
            for row, i in enumerate(picked):
                matrix[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            yield picked, matrix, mask

    def _run(self, matrix: np.ndarray, mask: np.ndarray, kind: str = "query") -> np.ndarray:
        if self.session is not None:
            session = self.passage_session if kind == "passage" else self.session
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
                for picked, matrix, mask in self._batches(ids):
                    out[[start + i for i in picked]] = self._run(matrix, mask, kind)
        return _normalize(out)

    @property
    def dim(self) -> int:
        if self.torch_model is not None:
            return int(self.torch_model.config.hidden_size)
        return int(json.loads((self.model_dir / "config.json").read_text())["hidden_size"])
