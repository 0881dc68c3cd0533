from sparkportal.celery import app, enqueue_default


@app.task(bind=True, ignore_result=True, acks_late=True)
def benchmark_run_execute_task(self, run_id: int) -> None:
    """Runs on `default`; claims the run (queued -> running), so a redelivery does nothing."""
    from benchmarks import services

    services.run_execute(run_id=run_id, worker=self.request.hostname or "")


@app.task(ignore_result=True, acks_late=True)
def benchmark_repeat_task(result_id: int) -> None:
    """Runs on the server's node queue; claims the repeat row (pending -> running)."""
    from benchmarks import services

    services.repeat_execute(result_id=result_id)


@app.task(ignore_result=True, time_limit=60)
def benchmark_plan_scheduled_task(plan_id: int) -> None:
    """Fired by beat: wait the plan's random delay (RandomizedDelaySec), then run or skip."""
    from benchmarks import selectors, services

    plan = selectors.plan_get(plan_id=plan_id)
    delay = services.plan_scheduled_delay(plan=plan)
    enqueue_default(benchmark_plan_fire_task, plan_id, countdown=delay)


@app.task(ignore_result=True, time_limit=60)
def benchmark_plan_fire_task(plan_id: int) -> None:
    from benchmarks import selectors, services

    services.run_scheduled(plan=selectors.plan_get(plan_id=plan_id))


@app.task(ignore_result=True, time_limit=120)
def benchmark_runs_reconcile_task() -> None:
    """Fired by beat: fail runs whose worker stopped renewing their lease; safe to run twice."""
    from benchmarks import services

    services.runs_reconcile()
