"""Evaluation on a labeled sample, and calibration of the rerank margin per embedder and taxonomy.

Why calibrate: the field notes' fixed margin of 0.15 does not carry over between embedders; with small
embedders the top-1/top-2 gap is almost never that wide, so every file would go to the LLM. The margin
kept is the smallest at which the files accepted without rerank are still at least `target` precise.
"""
import csv
import io
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from accounts.models import User
from classifier import rerank
from classifier.archive import extract, scan
from classifier.embedding import embedders
from classifier.models import LabeledExample, TaxonomyVersion
from classifier.taxonomy import examples, label_index
from sparkportal.exceptions import ValidationFailed

# Thousands of labeled rows calibrate well; more only slows the worker down.
MAX_LABELED_CSV_BYTES = 10 * 1024 * 1024


def parse_labeled_csv(text: str) -> list[tuple[str, str]]:
    """Rows of (path or text, expected code); a header row is optional."""
    rows = []
    reader = csv.reader(io.StringIO(text))
    for n, row in enumerate(_csv_rows(reader), start=1):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2:
            raise ValidationFailed(f"labeled CSV line {n}: expected two columns (path or text, expected code).")
        source, code = row[0].strip(), row[1].strip()
        if n == 1 and code.lower() in ("code", "expected", "expected_code", "label"):
            continue
        if not source or not code:
            missing = "path or text" if not source else "expected code"
            raise ValidationFailed(f"labeled CSV line {n}: the {missing} is empty.", code="empty_cell")
        rows.append((source, code))
    if not rows:
        raise ValidationFailed("The labeled CSV has no rows.")
    return rows


def _csv_rows(reader) -> Iterator[list[str]]:
    """The reader's rows; a row it cannot read (a cell over the csv module's size limit, a stray quote in
    strict mode) is refused with its line instead of a server error."""
    try:
        yield from reader
    except csv.Error as exc:
        raise ValidationFailed(f"labeled CSV line {reader.line_num}: {exc}; check that line's quotes and length.",
                               code="invalid_csv") from None


def decode_labeled_csv(raw: bytes, *, name: str = "the labeled CSV") -> str:
    """UTF-8 (with or without a byte-order mark); anything else is refused with the line it breaks on."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ValidationFailed(f"{name} line {line}: not UTF-8 (byte {raw[exc.start]:#04x}); save it as UTF-8.",
                               code="invalid_encoding") from None


def rows_check(*, version: TaxonomyVersion, rows: list[tuple[str, str]]) -> None:
    """Before any model loads: every expected code is in the version, every file path inside the roots."""
    codes = set(version.nodes.values_list("code", flat=True))
    for n, (source, code) in enumerate(rows, start=1):
        if code not in codes:
            raise ValidationFailed(f"Labeled row {n}: expected code {code!r} is not in {version}.",
                                   code="unknown_code")
        path = Path(source)
        if path.is_absolute() and path.is_file() and not scan.inside_roots(path):
            raise ValidationFailed(f"Labeled row {n}: {source} is outside the archive roots.",
                                   code="path_outside_roots")


def example_text(path: str) -> str:
    """The text a job embedded for a file, or "" when it is gone or no longer inside the roots."""
    file = Path(path)
    try:
        if not file.is_file() or not scan.inside_roots(file):
            return ""
        stat = file.stat()
    except OSError:
        return ""
    return extract.extract(file, size=stat.st_size, mtime=stat.st_mtime)[0]


def text_of(source: str) -> str:
    path = Path(source)
    if path.is_absolute() and path.is_file():
        if not scan.inside_roots(path):
            raise ValidationFailed(f"{source} is outside the archive roots.", code="path_outside_roots")
        stat = path.stat()
        return extract.extract(path, size=stat.st_size, mtime=stat.st_mtime)[0]
    return source


def score(*, version: TaxonomyVersion, embedder_key: str, depth: int, rows: list[tuple[str, str]],
          use_examples: bool = True) -> list[dict]:
    return score_with_examples(version=version, embedder_key=embedder_key, depth=depth, rows=rows,
                               use_examples=use_examples)[0]


def score_with_examples(*, version: TaxonomyVersion, embedder_key: str, depth: int, rows: list[tuple[str, str]],
                        use_examples: bool = True) -> tuple[list[dict], examples.ExampleSet | None]:
    """Top classes of each row, and the examples used. A row never counts as its own example."""
    rows_check(version=version, rows=rows)
    texts = [text_of(source) for source, _ in rows]
    chosen = None
    if use_examples:
        chosen = examples.example_set(version, leave_out=frozenset(texts) | frozenset(s for s, _ in rows))
    labels = label_index.LabelIndex(version, embedder_key, depth, examples=chosen)
    hits = labels.search(embedders.load(embedder_key).embed(texts, kind="document"))
    scored = []
    for (source, code), text, found in zip(rows, texts, hits, strict=True):
        expected = ".".join(code.split(".")[:depth])
        scored.append({"source": source, "text": text, "expected": expected, "hits": found,
                       "top": [n.code for n, _ in found], "margin": found[0][1] - found[1][1] if len(found) > 1 else 1})
    return scored, chosen


def calibrate(scored: list[dict], *, target: float = 0.95) -> dict:
    """The precision / rerank-share trade-off over candidate margins, and the smallest margin meeting `target`."""
    margins = sorted({0.0, *(round(s["margin"], 4) for s in scored)})
    curve = []
    for m in margins:
        accepted = [s for s in scored if s["margin"] > m]
        correct = sum(s["top"][0] == s["expected"] for s in accepted)
        precision = correct / len(accepted) if accepted else 1.0
        curve.append({"margin": m, "precision": round(precision, 4),
                      "rerank_share": round(1 - len(accepted) / len(scored), 4)})
    chosen = next((p for p in curve if p["precision"] >= target), curve[-1])
    return {"margin": chosen["margin"], "precision": chosen["precision"], "rerank_share": chosen["rerank_share"],
            "target": target, "samples": len(scored), "curve": curve}


def curve_point(curve: list[dict], margin: float) -> dict | None:
    """The curve's figures at any margin: files above it are those above the largest curve margin <= it."""
    below = [p for p in curve if p["margin"] <= margin]
    return max(below, key=lambda p: p["margin"]) if below else None


def evaluate(*, version: TaxonomyVersion, embedder_key: str, depth: int, rows: list[tuple[str, str]],
             margin: float | None = None, rerank_model: str = "", user: str = "",
             access: rerank.Access | None = None, use_examples: bool = True) -> dict:
    """`access`: where the rerank goes and with which key (services.rerank_access); default: the settings.
    `use_examples`: combine the labels with the taxonomy's examples (never the rows themselves)."""
    scored, chosen = score_with_examples(version=version, embedder_key=embedder_key, depth=depth, rows=rows,
                                         use_examples=use_examples)
    if margin is None:
        from classifier.services import default_margin

        margin = default_margin(version, embedder_key, depth)
    access = access or rerank.Access(url=settings.PORTAL_CLASSIFIER_LLM_URL,
                                     api_key=settings.PORTAL_CLASSIFIER_LLM_API_KEY)
    reranker = rerank.Reranker(access, model=rerank_model, user=user)
    reranker.examples = chosen.by_code() if chosen is not None else {}
    final, reranked, fallbacks = [], 0, 0
    for s in scored:
        pick = s["top"][0]
        if rerank_model and s["margin"] <= margin:
            reranked += 1
            answer = reranker.choose(excerpt=s["text"], candidates=s["hits"])
            fallbacks += answer.choice is None
            pick = answer.choice.code if answer.choice else pick
        final.append(pick)
    n = len(scored)
    confused = Counter((s["expected"], got) for s, got in zip(scored, final, strict=True) if got != s["expected"])
    return {
        "embedder": embedder_key, "depth": depth, "margin": margin, "rerank_model": rerank_model, "samples": n,
        "examples": len(chosen.codes) if chosen is not None else 0, "use_examples": use_examples,
        "accuracy_embedding": round(sum(s["top"][0] == s["expected"] for s in scored) / n, 4),
        "top5_recall": round(sum(s["expected"] in s["top"] for s in scored) / n, 4),
        "accuracy_final": round(sum(got == s["expected"] for s, got in zip(scored, final, strict=True)) / n, 4),
        "macro_f1": round(macro_f1([s["expected"] for s in scored], [s["top"][0] for s in scored]), 4),
        "rerank_share": round(reranked / n, 4),
        "rerank_fallbacks": fallbacks,
        "rerank_refused": reranker.refusal.reason if reranker.refusal is not None else "",
        "confused": [{"expected": e, "got": g, "count": c} for (e, g), c in confused.most_common(5)],
    }


def macro_f1(expected: list[str], got: list[str]) -> float:
    """F1 per expected class, averaged: a small class counts as much as a large one."""
    scores = []
    for label in set(expected):
        tp = sum(e == g == label for e, g in zip(expected, got, strict=True))
        predicted, actual = got.count(label), expected.count(label)
        scores.append(2 * tp / (predicted + actual) if predicted + actual else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def evaluate_side_by_side(*, version: TaxonomyVersion, rows: list[tuple[str, str]], settings_list: list[dict],
                          user: str, owner: User | None = None, learn: bool = False) -> list[dict]:
    """Several settings on the same rows; on the portal's gateway the reranks are charged to `owner`.
    `learn`: afterwards the rows become examples of their classes (for the next jobs, never for this
    evaluation)."""
    from classifier import services

    # Two evaluations of one user may run at once: each gets a key of its own name.
    name = f"classifier evaluation {uuid.uuid4().hex[:8]}"
    with services.rerank_access(owner=owner, models=[s.get("rerank_model") or "" for s in settings_list],
                                name=name, lifetime=services.EVALUATION_KEY_LIFETIME) as access:
        reports = []
        for setting in settings_list:
            setting = dict(setting)
            # A setting may name its own version: the label text it is evaluated with.
            side_version = TaxonomyVersion.objects.get(pk=setting.pop("version_id")) \
                if setting.get("version_id") else version
            report = evaluate(version=side_version, rows=rows, user=user, access=access, **setting)
            reports.append({**report, "version": side_version.number})
    if learn:
        services.examples_import(actor=owner, taxonomy=version.taxonomy, rows=rows,
                                 source=LabeledExample.Source.EVALUATION)
    return reports
