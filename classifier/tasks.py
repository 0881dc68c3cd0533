from sparkportal.celery import app


@app.task(acks_late=True, time_limit=24 * 3600, soft_time_limit=24 * 3600 - 60)
def classification_job_run_task(job_id: int) -> str:
    """Idempotent: the pipeline claims the job with a conditional UPDATE (queued -> running)."""
    from classifier import pipeline

    job = pipeline.job_run(job_id=job_id)
    return job.status if job else "not claimed"


@app.task(time_limit=3600)
def evaluation_run_task(*, version_id: int, rows: list, settings_list: list, user: str,
                        user_id: int | None = None, learn: bool = False) -> list:
    """Evaluate one or more settings on the same labeled rows (side by side); reranks are charged to `user_id`.
    A setting may name its own version_id (the label text it is evaluated with); the others use `version_id`.
    `learn`: the rows become examples of the taxonomy (only when the starter may change it)."""
    from accounts.models import User
    from classifier import evaluation
    from classifier.models import TaxonomyVersion

    version = TaxonomyVersion.objects.get(pk=version_id)
    owner = User.objects.filter(pk=user_id).first() if user_id is not None else None
    return evaluation.evaluate_side_by_side(version=version, rows=[tuple(r) for r in rows],
                                            settings_list=settings_list, user=user, owner=owner, learn=learn)


@app.task(time_limit=3600)
def margin_calibrate_task(*, version_id: int, rows: list, embedder_key: str, depth: int, target: float,
                          actor_id: int | None) -> dict:
    from accounts.models import User
    from classifier import services
    from classifier.models import TaxonomyVersion

    version = TaxonomyVersion.objects.get(pk=version_id)
    actor = User.objects.filter(pk=actor_id).first()
    return services.margin_calibrate(actor=actor, version=version, rows=[tuple(r) for r in rows],
                                     embedder_key=embedder_key, depth=depth, target=target)
