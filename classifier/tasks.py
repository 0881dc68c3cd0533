from sparkportal.celery import app


@app.task(acks_late=True, time_limit=24 * 3600, soft_time_limit=24 * 3600 - 60)
def classification_job_run_task(job_id: int) -> str:
    """Idempotent: the pipeline claims the job with a conditional UPDATE (queued -> running)."""
    from classifier import pipeline

    job = pipeline.job_run(job_id=job_id)
    return job.status if job else "not claimed"


@app.task(time_limit=3600)
def evaluation_run_task(*, version_id: int, rows: list, settings_list: list, user: str) -> list:
    """Evaluate one or more settings on the same labeled rows (side by side)."""
    from classifier import evaluation
    from classifier.models import TaxonomyVersion

    version = TaxonomyVersion.objects.get(pk=version_id)
    return [evaluation.evaluate(version=version, rows=[tuple(r) for r in rows], user=user, **s) for s in settings_list]


@app.task(time_limit=3600)
def margin_calibrate_task(*, version_id: int, rows: list, embedder_key: str, depth: int, target: float,
                          actor_id: int | None) -> dict:
    from accounts.models import User
    from classifier import evaluation, services
    from classifier.models import TaxonomyVersion

    version = TaxonomyVersion.objects.get(pk=version_id)
    scored = evaluation.score(version=version, embedder_key=embedder_key, depth=depth, rows=[tuple(r) for r in rows])
    calibration = evaluation.calibrate(scored, target=target)
    actor = User.objects.filter(pk=actor_id).first()
    services.version_margin_store(actor=actor, version=version, embedder_key=embedder_key, depth=depth,
                                  calibration=calibration)
    return calibration
