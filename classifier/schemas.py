from datetime import datetime

from ninja import Schema


class TaxonomyIn(Schema):
    name: str
    yaml: str


class VersionOut(Schema):
    id: int
    taxonomy: str
    number: int
    note: str
    nodes: int
    margins: dict
    created_at: datetime


class TaxonomyNodeOut(Schema):
    id: int
    code: str
    name: str
    description: str
    keywords: list[str]
    depth: int
    label_path: str
    parent_code: str | None


class NodePatch(Schema):
    name: str | None = None
    description: str | None = None
    keywords: list[str] | None = None


class FindingOut(Schema):
    kind: str
    codes: list[str]
    message: str


class JobIn(Schema):
    taxonomy: str
    version: int | None = None
    path: str
    depth: int = 2
    embedder: str | None = None
    margin: float | None = None
    rerank_model: str | None = None
    include: list[str] = []
    exclude: list[str] = []
    max_bytes: int | None = None
    shared: bool = False


class JobOut(Schema):
    id: int
    owner: str
    taxonomy: str
    version: int
    source_path: str
    depth: int
    embedder: str
    margin: float
    rerank_model: str
    status: str
    status_reason: str
    files_total: int
    files_done: int
    files_skipped: int
    files_reranked: int
    rerank_share: float
    seconds_extract: float
    seconds_embed: float
    seconds_rerank: float
    shared: bool
    created_at: datetime
    finished_at: datetime | None


class ClassifierResultOut(Schema):
    id: int
    path: str
    code: str
    label_path: str
    score: float | None
    margin: float | None
    method: str
    confidence: float | None
    reason: str
    candidates: list[dict]
    original_code: str
    corrected_by: str | None

    @staticmethod
    def resolve_corrected_by(obj) -> str | None:
        return obj.corrected_by.get_username() if obj.corrected_by_id else None


class CorrectionIn(Schema):
    code: str


class ErrorOut(Schema):
    detail: str
    code: str


class CalibrateIn(Schema):
    labeled_csv: str
    embedder: str | None = None
    depth: int = 2
    target: float = 0.95


class MarginIn(Schema):
    embedder: str
    depth: int = 2
    margin: float


class EvalSetting(Schema):
    embedder_key: str
    version: int | None = None
    depth: int = 2
    margin: float | None = None
    rerank_model: str = ""
    use_examples: bool = True  # False: labels only (zero-shot), to compare side by side


class EvaluateIn(Schema):
    taxonomy: str
    version: int | None = None
    labeled_csv: str
    settings: list[EvalSetting]


class TaskOut(Schema):
    task_id: str
    state: str
    result: dict | list | None = None
    error: str | None = None


class ApplyIn(Schema):
    target: str
    mode: str = "copy"
