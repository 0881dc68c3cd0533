"""CSV/JSON rows of a job's results, and the apply plan (a dry run of copies into a Johnny-Decimal tree)."""
from pathlib import PurePosixPath

from classifier.models import ClassificationJob, ClassificationResult

FIELDS = ["path", "code", "label_path", "score", "method", "confidence", "reason"]


def rows(results) -> list[dict]:
    return [{"path": r.path, "code": r.code, "label_path": r.label_path,
             "score": round(r.score, 4) if r.score is not None else "", "method": r.method,
             "confidence": r.confidence if r.confidence is not None else "", "reason": r.reason} for r in results]


def _folder(code: str, label_path: str) -> PurePosixPath:
    """10.06.03 + 'Finance / Expenses / Food' -> 10-19 …/10 Finance/10.06 Expenses/10.06.03 Food."""
    codes = code.split(".")
    names = [n.strip().replace("/", "-") for n in label_path.split(" / ")]
    area = int(codes[0]) // 10 * 10
    parts = [f"{area}-{area + 9}"]
    for depth in range(len(codes)):
        parts.append(f"{'.'.join(codes[: depth + 1])} {names[depth] if depth < len(names) else ''}".strip())
    return PurePosixPath(*parts)


def apply_plan(job: ClassificationJob, *, target: str, mode: str = "copy") -> list[dict]:
    """What would be copied (or symlinked) where. Sources are never moved or changed."""
    plan = []
    for r in job.results.exclude(method=ClassificationResult.Method.SKIPPED).order_by("code", "path"):
        destination = PurePosixPath(target) / _folder(r.code, r.label_path) / PurePosixPath(r.path).name
        plan.append({"action": mode, "source": r.path, "destination": str(destination), "code": r.code})
    return plan


def apply(plan: list[dict]) -> dict:
    """Carry out a plan: copy (or symlink) each source to its destination. Sources are only read;
    an existing destination is never overwritten."""
    import os
    import shutil
    from pathlib import Path

    done, kept = 0, []
    for step in plan:
        destination = Path(step["destination"])
        if destination.exists() or destination.is_symlink():
            kept.append(f"{destination} exists")
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        if step["action"] == "symlink":
            os.symlink(step["source"], destination)
        else:
            shutil.copy2(step["source"], destination)
        done += 1
    return {"placed": done, "skipped": kept}
