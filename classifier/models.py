"""Taxonomies (versioned trees of Johnny-Decimal codes), classification jobs and their results."""
from django.conf import settings
from django.db import models
from django.db.models import Q


class Taxonomy(models.Model):
    """A named taxonomy; its content lives in immutable versions (a job records the one it used)."""

    name = models.SlugField(max_length=100, unique=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="taxonomies")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TaxonomyVersion(models.Model):
    """One immutable state of a taxonomy. Editing a node creates the next version.

    The embedding index of a version is built once per embedder and saved under VAR_DIR;
    `margins` holds the calibrated rerank margin per embedder ({embedder: {margin, precision, curve}}).
    """

    taxonomy = models.ForeignKey(Taxonomy, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    source = models.TextField(blank=True, help_text="The YAML this version came from, if imported.")
    note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    margins = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["taxonomy", "-number"]
        constraints = [models.UniqueConstraint(fields=["taxonomy", "number"],
                                               name="classifier_taxonomyversion_unique_number")]

    def __str__(self) -> str:
        return f"{self.taxonomy.name} v{self.number}"


class TaxonomyNode(models.Model):
    version = models.ForeignKey(TaxonomyVersion, on_delete=models.CASCADE, related_name="nodes")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    code = models.CharField(max_length=40)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    keywords = models.JSONField(default=list, blank=True)
    # Example texts written in the taxonomy's YAML (`examples:`): versioned with the node.
    examples = models.JSONField(default=list, blank=True)
    depth = models.PositiveSmallIntegerField()
    # "Finance / Expenses / Food": names from the root, kept so results need no tree walk.
    label_path = models.CharField(max_length=700)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "code"], name="classifier_taxonomynode_unique_code"),
            models.CheckConstraint(condition=Q(depth__gte=1) & Q(depth__lte=3), name="classifier_taxonomynode_depth"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    def flat_text(self) -> str:
        """The string that is embedded: hierarchical names, description and keywords. No code: numbers
        carry no meaning for the embedder and moved accuracy by several points (perf/RESULTS.md)."""
        text = self.label_path
        if self.description:
            text += f" — {self.description}"
        if self.keywords:
            text += f" ({', '.join(self.keywords)})"
        return text


class LabeledExample(models.Model):
    """A text known to belong to a class of a taxonomy: a row of a labeled CSV (examples, calibration,
    evaluation) or a person's correction of a job result. Examples belong to the taxonomy and are matched
    to a version's nodes by code, so they carry over when the labels are edited; a job uses those that
    existed when it started (`ClassificationJob.example_set`)."""

    class Source(models.TextChoices):
        CSV = "csv"
        CALIBRATION = "calibration"
        EVALUATION = "evaluation"
        CORRECTION = "correction"

    taxonomy = models.ForeignKey(Taxonomy, on_delete=models.CASCADE, related_name="examples")
    code = models.CharField(max_length=40)
    text = models.TextField()
    source = models.CharField(max_length=16, choices=Source.choices)
    # A correction's result: correcting it again moves the example instead of adding a second one.
    result = models.OneToOneField("ClassificationResult", null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="example")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["taxonomy", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(source__in=["csv", "calibration", "evaluation", "correction"]),
                                   name="classifier_labeledexample_source_valid"),
            models.CheckConstraint(condition=~Q(text=""), name="classifier_labeledexample_text_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.code}: {self.text[:60]}"


class ClassificationJob(models.Model):
    """A run of the classifier over a folder under the archive roots or over uploaded files.

    Status: queued -> running -> done | failed | cancelled; cancelled/failed -> queued (resume,
    finished files are kept and not redone). See TRANSITIONS.

    `run_token` names the one run that may write the job: set when a task claims it (queued -> running),
    so a run that was cancelled and resumed before it noticed finds a new token and stops without writing.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    TRANSITIONS = {
        Status.QUEUED: {Status.RUNNING, Status.CANCELLED},
        Status.RUNNING: {Status.DONE, Status.FAILED, Status.CANCELLED},
        Status.CANCELLED: {Status.QUEUED},
        Status.FAILED: {Status.QUEUED},
        Status.DONE: set(),
    }

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="classification_jobs")
    version = models.ForeignKey(TaxonomyVersion, on_delete=models.PROTECT, related_name="jobs")
    source_path = models.CharField(max_length=1000)
    include = models.JSONField(default=list, blank=True)
    exclude = models.JSONField(default=list, blank=True)
    max_bytes = models.PositiveBigIntegerField(default=50 * 1024 * 1024)
    depth = models.PositiveSmallIntegerField(default=2)
    embedder = models.CharField(max_length=100)
    margin = models.FloatField(help_text="top-1 minus top-2 above this: taken without the LLM.")
    rerank_model = models.CharField(max_length=200, blank=True, help_text="Empty: no LLM rerank.")
    use_examples = models.BooleanField(default=True, help_text="Combine label similarity with labeled examples.")
    # The examples the run used: {"count", "last_id" (stored examples up to this id), "yaml", "digest"}.
    example_set = models.JSONField(default=dict, blank=True)
    shared = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    status_reason = models.TextField(blank=True)
    run_token = models.CharField(max_length=32, blank=True, editable=False)
    files_total = models.PositiveIntegerField(default=0)
    files_done = models.PositiveIntegerField(default=0)
    files_reranked = models.PositiveIntegerField(default=0)
    files_skipped = models.PositiveIntegerField(default=0)
    seconds_extract = models.FloatField(default=0.0)
    seconds_embed = models.FloatField(default=0.0)
    seconds_rerank = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=["queued", "running", "done", "failed", "cancelled"]),
                                   name="classifier_classificationjob_status_valid"),
            models.CheckConstraint(condition=Q(depth__gte=1) & Q(depth__lte=3),
                                   name="classifier_classificationjob_depth"),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.source_path})"

    @property
    def rerank_share(self) -> float:
        classified = self.files_done - self.files_skipped
        return self.files_reranked / classified if classified > 0 else 0.0


class ClassificationResult(models.Model):
    class Method(models.TextChoices):
        EMBEDDING = "embedding"      # top-1 won by more than the margin
        RERANK = "rerank"            # the LLM chose among the candidates
        FALLBACK = "fallback"        # the LLM failed twice: top-1 taken, marked as such
        SKIPPED = "skipped"          # unreadable, outside the roots, too large...
        MANUAL = "manual"            # corrected by a person

    job = models.ForeignKey(ClassificationJob, on_delete=models.CASCADE, related_name="results")
    path = models.CharField(max_length=2000)
    content_hash = models.CharField(max_length=64, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    node = models.ForeignKey(TaxonomyNode, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    code = models.CharField(max_length=40, blank=True)
    label_path = models.CharField(max_length=700, blank=True)
    score = models.FloatField(null=True, blank=True)
    margin = models.FloatField(null=True, blank=True)
    candidates = models.JSONField(default=list, blank=True)
    method = models.CharField(max_length=16, choices=Method.choices)
    confidence = models.FloatField(null=True, blank=True)
    reason = models.TextField(blank=True)
    original_code = models.CharField(max_length=40, blank=True, help_text="The machine's answer before a correction.")
    corrected_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    corrected_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job", "path"]
        constraints = [
            models.UniqueConstraint(fields=["job", "path"], name="classifier_classificationresult_unique_path"),
            models.CheckConstraint(condition=Q(method__in=["embedding", "rerank", "fallback", "skipped", "manual"]),
                                   name="classifier_classificationresult_method_valid"),
        ]
        indexes = [models.Index(fields=["job", "code"], name="classifier_result_job_code")]

    def __str__(self) -> str:
        return f"{self.path} -> {self.code or self.method}"
