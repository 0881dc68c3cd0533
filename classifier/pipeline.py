"""Running a classification job: walk, read, embed, search, rerank when needed, record.

1. Claim the job (queued -> running) with a fresh run token; another worker that got there first makes this
   a no-op. Every later write of the run is conditional on that token: a run cancelled and resumed before it
   noticed finds another run's token at its next write and stops, writing nothing (exactly one run counts).
2. List the files under the source (confined to the roots); files already classified with the same
   content hash are kept (resume), problems become `skipped` results with their reason.
3. In batches (the first of scoring.FIRST_BATCH files, the rest of PORTAL_CLASSIFIER_BATCH, or a GPU
   embedder's own batch when larger): extract name + first 4 KB and embed (one batch ahead, in a thread, while
   the batch before is scored, reranked and saved: classifier.prefetch), score the classes (label along the
   whole path, combined with the taxonomy's labeled examples when the job uses them: classifier.scoring) and
   keep the top 5; take top-1 when its lead over top-2 exceeds the job's margin, else ask the LLM (shown
   examples of its candidate classes) (retry once, then fall back to top-1). On the portal's
   gateway the LLM is asked with a temporary key of the job's owner, made for this run and revoked when
   it ends (services.rerank_access), so the owner's quotas apply and the usage is theirs.
4. Between batches, stop if the job was cancelled; publish progress about once a second.
5. At the end, the files of this run taken on their embedding lead are scored again with what the whole run
   taught (centering and self-training had only the first batch for the first files); those whose top class
   changed are updated (_rescore). Corrections and the LLM's decisions are kept.
"""
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from classifier import events, prefetch, rerank, scoring, services
from classifier.archive import extract, scan
from classifier.embedding import embedders
from classifier.models import ClassificationJob, ClassificationResult
from classifier.taxonomy import examples, label_index

log = logging.getLogger(__name__)
Method = ClassificationResult.Method


@dataclass
class Scored:
    node: object
    score: float
    margin: float
    candidates: list
    method: str
    confidence: float | None
    reason: str


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def decide(*, job: ClassificationJob, excerpt: str, hits: list, reranker: rerank.Reranker) -> Scored:
    """Stage 2 for one file: take top-1 on a clear lead, else the LLM's pick among the candidates."""
    top_node, top_score = hits[0]
    margin = top_score - hits[1][1] if len(hits) > 1 else 1.0
    candidates = [{"code": n.code, "label": n.label_path, "score": round(s, 4)} for n, s in hits]
    if margin > job.margin or not job.rerank_model:
        return Scored(top_node, top_score, margin, candidates, Method.EMBEDDING, None,
                      f"embedding lead {margin:.3f} over the next class")
    answer = reranker.choose(excerpt=excerpt, candidates=hits)
    choice = answer.choice
    if choice is None:
        return Scored(top_node, top_score, margin, candidates, Method.FALLBACK, None, answer.fallback_reason())
    node, score = next((n, s) for n, s in hits if n.code == choice.code)
    return Scored(node, score, margin, candidates, Method.RERANK, choice.confidence, choice.reason)


class Progress:
    def __init__(self, job: ClassificationJob):
        self.job = job
        self.started = time.monotonic()
        self.done_at_start = job.files_done
        self.last_sent = 0.0

    def send(self, *, force: bool = False, message: str = "") -> None:
        now = time.monotonic()
        if not force and now - self.last_sent < 1.0:
            return
        self.last_sent = now
        job = self.job
        job.refresh_from_db()
        rate = (job.files_done - self.done_at_start) / max(now - self.started, 1e-6)
        left = job.files_total - job.files_done
        events.send_job_progress({
            "job_id": job.pk, "status": job.status, "files_total": job.files_total, "files_done": job.files_done,
            "files_skipped": job.files_skipped, "files_reranked": job.files_reranked,
            "rerank_share": round(job.rerank_share, 4), "files_per_s": round(rate, 2),
            "eta_s": round(left / rate, 1) if rate > 0 and left > 0 else None, "message": message,
            "seconds_extract": round(job.seconds_extract, 2), "seconds_embed": round(job.seconds_embed, 2),
            "seconds_rerank": round(job.seconds_rerank, 2)})


def _skip(job: ClassificationJob, found: scan.Found) -> ClassificationResult:
    return ClassificationResult(job=job, path=str(found.path), size=found.size, method=Method.SKIPPED,
                                reason=found.skip_reason)


def _mine(job: ClassificationJob, token: str) -> QuerySet[ClassificationJob]:
    """The job's row while this run holds it; empty once another run claimed it."""
    return ClassificationJob.objects.filter(pk=job.pk, run_token=token)


@dataclass
class Read:
    """A batch's texts and vectors, made one batch ahead (classifier.prefetch): no database in here."""

    texts: list[str]
    vectors: object
    extract_s: float
    embed_s: float


def _read(embedder, batch: list) -> Read:
    t0 = time.monotonic()
    texts = [extract.extract(found.path, size=found.size, mtime=found.mtime)[0] for found, _digest in batch]
    t1 = time.monotonic()
    vectors = embedder.embed(texts, kind="document")
    return Read(texts, vectors, t1 - t0, time.monotonic() - t1)


def _classify_batch(job: ClassificationJob, labels: label_index.LabelIndex, batch: list, read: Read,
                    reranker: rerank.Reranker) -> dict:
    """batch: [(found, hash)], read: its texts and vectors. Returns timings, counts and the unsaved results."""
    t1 = time.monotonic()
    texts = read.texts
    all_hits = labels.search(read.vectors)
    t2 = time.monotonic()
    results, reranked = [], 0
    for (found, digest), text, hits in zip(batch, texts, all_hits, strict=True):
        scored = decide(job=job, excerpt=text, hits=hits, reranker=reranker)
        reranked += scored.method in (Method.RERANK, Method.FALLBACK)
        results.append(ClassificationResult(
            job=job, path=str(found.path), content_hash=digest, size=found.size, node=scored.node,
            code=scored.node.code, label_path=scored.node.label_path, score=scored.score, margin=scored.margin,
            candidates=scored.candidates, method=scored.method, confidence=scored.confidence, reason=scored.reason))
    t3 = time.monotonic()
    return {"extract": read.extract_s, "embed": read.embed_s + t2 - t1, "rerank": t3 - t2, "reranked": reranked,
            "results": results}


@transaction.atomic
def _batch_save(job: ClassificationJob, token: str, stats: dict) -> bool:
    """Count and save a batch while this run still holds the job; False (nothing saved) once it does not.
    The conditional UPDATE comes first: it locks the row, so a claim by another run waits or wins."""
    results = stats["results"]
    held = _mine(job, token).filter(status=ClassificationJob.Status.RUNNING).update(
        files_done=F("files_done") + len(results), files_reranked=F("files_reranked") + stats["reranked"],
        seconds_extract=F("seconds_extract") + stats["extract"],
        seconds_embed=F("seconds_embed") + stats["embed"], seconds_rerank=F("seconds_rerank") + stats["rerank"])
    if not held:
        return False
    ClassificationResult.objects.filter(job=job, path__in=[r.path for r in results]).delete()
    ClassificationResult.objects.bulk_create(results)
    return True


def job_claim(*, job_id: int) -> str | None:
    """queued -> running under a fresh token; None when another run got there first or the job is not queued."""
    token = uuid.uuid4().hex
    claimed = ClassificationJob.objects.filter(pk=job_id, status=ClassificationJob.Status.QUEUED).update(
        status=ClassificationJob.Status.RUNNING, run_token=token, started_at=timezone.now(), status_reason="")
    return token if claimed else None


def job_run(*, job_id: int) -> ClassificationJob | None:
    token = job_claim(job_id=job_id)
    if token is None:
        return None
    job = ClassificationJob.objects.select_related("version", "owner").get(pk=job_id)
    progress = Progress(job)
    try:
        with services.rerank_access(owner=job.owner, models=[job.rerank_model], name=f"classifier job #{job.pk}",
                                    lifetime=services.JOB_KEY_LIFETIME) as access:
            finished = _run(job, token, progress,
                            rerank.Reranker(access, model=job.rerank_model, user=job.owner.get_username()))
        # Done only once the run's key is revoked: whoever sees a finished job sees its key gone too.
        if finished:
            _mine(job, token).filter(status=ClassificationJob.Status.RUNNING).update(
                status=ClassificationJob.Status.DONE, finished_at=timezone.now())
    except Exception as exc:
        log.exception("classification job %s failed", job_id)
        _mine(job, token).filter(status=ClassificationJob.Status.RUNNING).update(
            status=ClassificationJob.Status.FAILED, status_reason=f"{type(exc).__name__}: {exc}"[:2000],
            finished_at=timezone.now())
    progress.send(force=True)
    job.refresh_from_db()
    return job


def _still_running(job: ClassificationJob, token: str) -> bool:
    return _mine(job, token).filter(status=ClassificationJob.Status.RUNNING).exists()


def _example_set(job: ClassificationJob, token: str) -> examples.ExampleSet | None:
    """The examples as of the job's first start: a resumed job keeps the set it began with."""
    if not job.use_examples:
        return None
    chosen = examples.example_set(job.version, up_to_id=job.example_set.get("last_id"))
    _mine(job, token).update(example_set=chosen.summary())
    return chosen


@transaction.atomic
def _start_save(job: ClassificationJob, token: str, found: list, skipped: list, kept: int) -> bool:
    """The run's file counts and skipped files, saved while this run still holds the job (as _batch_save)."""
    done_before = ClassificationResult.objects.filter(job=job).exclude(method=Method.SKIPPED)
    held = _mine(job, token).update(
        files_total=len(found), files_skipped=len(skipped), files_done=kept + len(skipped),
        files_reranked=done_before.filter(method__in=[Method.RERANK, Method.FALLBACK]).count())
    if not held:
        return False
    ClassificationResult.objects.filter(job=job, method=Method.SKIPPED).delete()
    ClassificationResult.objects.bulk_create(skipped)
    return True


def _run(job: ClassificationJob, token: str, progress: Progress, reranker: rerank.Reranker) -> bool:
    """Classify the job's files; False when this run no longer holds the job (cancelled, or resumed anew)."""
    source = Path(job.source_path)
    if not scan.inside_roots(source):
        raise PermissionError(f"{source} is no longer inside the archive roots")
    found = list(scan.walk(source, include=job.include, exclude=job.exclude, max_bytes=job.max_bytes))
    known = dict(ClassificationResult.objects.filter(job=job).exclude(method=Method.SKIPPED)
                 .values_list("path", "content_hash"))
    skipped = [_skip(job, f) for f in found if f.skip_reason]
    todo, kept = [], 0
    for f in found:
        if f.skip_reason:
            continue
        try:
            digest = content_hash(f.path)
        except OSError as exc:
            skipped.append(_skip(job, scan.Found(f.path, f.size, skip_reason=f"cannot read: {exc.strerror}")))
            continue
        if known.get(str(f.path)) == digest:
            kept += 1
        else:
            todo.append((f, digest))
    if not _start_save(job, token, found, skipped, kept):
        return False
    if not embedders.is_loaded(job.embedder):
        progress.send(force=True, message=f"Loading the embedder {job.embedder} (its first use on a node converts "
                                          "and quantizes it once: about a minute).")
    embedder = embedders.load(job.embedder)
    progress.send(force=True, message="Embedding the taxonomy labels.")
    chosen = _example_set(job, token)
    reranker.examples = chosen.by_code() if chosen is not None else {}
    labels = label_index.LabelIndex(job.version, job.embedder, job.depth, examples=chosen)
    size = max(settings.PORTAL_CLASSIFIER_BATCH, embedder.job_batch)
    batches = scoring.job_batches(len(todo), size)
    # The next batch is read and embedded while this one is scored, reranked and saved.
    for (start, end), read in prefetch.ahead(batches, lambda bounds: _read(embedder, todo[bounds[0]:bounds[1]])):
        if not _still_running(job, token):
            return False
        stats = _classify_batch(job, labels, todo[start:end], read, reranker)
        if not _batch_save(job, token, stats):
            return False
        progress.send()
    if len(batches) < 2:
        return True  # one batch: its files were scored with everything the run learned
    return _rescore(job, token, labels, todo, reranker, progress)


def _rescore(job: ClassificationJob, token: str, labels: label_index.LabelIndex, todo: list,
             reranker: rerank.Reranker, progress: Progress) -> bool:
    """Step 5: the early batches were scored on what the first batch taught (centering, self-training);
    at the end, every file of this run taken on its embedding lead is scored again with what all of them
    taught, from the vectors kept in memory (nothing is embedded twice). A file whose top class changes
    gets the new decision (the LLM is asked when the new lead is too small, as in step 3); files decided
    by the LLM or corrected by a person, and files kept from an earlier run, are left as they are."""
    all_hits = labels.rescore()
    if not all_hits:
        return True  # too few files to have learned from (no centering, no self-training)
    progress.send(force=True, message="Re-scoring the first files with what the job learned from all of them.")
    stored = dict(ClassificationResult.objects.filter(job=job, method=Method.EMBEDDING).values_list("path", "code"))
    t0 = time.monotonic()
    updates = []
    for (found, _digest), hits in zip(todo, all_hits, strict=False):
        before = stored.get(str(found.path))
        if before is None or before == hits[0][0].code:
            continue
        margin = hits[0][1] - hits[1][1] if len(hits) > 1 else 1.0
        excerpt = ""
        if margin <= job.margin and job.rerank_model:
            if not _still_running(job, token):
                return False
            excerpt, _how = extract.extract(found.path, size=found.size, mtime=found.mtime)
        updates.append((str(found.path), decide(job=job, excerpt=excerpt, hits=hits, reranker=reranker)))
    changed = _rescore_save(job, token, updates, time.monotonic() - t0)
    if changed is None:
        return False
    progress.send(force=True, message=f"Re-scored the first files: {changed} changed class.")
    return True


@transaction.atomic
def _rescore_save(job: ClassificationJob, token: str, updates: list, seconds: float) -> int | None:
    """Save the re-scored decisions while this run holds the job (None once it does not); a result that was
    corrected meanwhile keeps the correction (only results still taken on their embedding lead change)."""
    if not _mine(job, token).filter(status=ClassificationJob.Status.RUNNING).update(
            seconds_rerank=F("seconds_rerank") + seconds):
        return None
    changed = reranked = 0
    for path, scored in updates:
        updated = ClassificationResult.objects.filter(job=job, path=path, method=Method.EMBEDDING).update(
            node=scored.node, code=scored.node.code, label_path=scored.node.label_path, score=scored.score,
            margin=scored.margin, candidates=scored.candidates, method=scored.method, confidence=scored.confidence,
            reason=f"{scored.reason}; re-scored at the end of the job")
        changed += updated
        reranked += updated and scored.method in (Method.RERANK, Method.FALLBACK)
    if reranked:
        _mine(job, token).update(files_reranked=F("files_reranked") + reranked)
    return changed
