"""The benchmarks app's writes, by subdomain: plans (workloads, plans, schedules), runs (create,
cancel, scheduled runs), execute (the runner), repeats (one repeat, statistics, retention), lease
(the runner's heartbeat and the reconcile of runs whose worker is gone)."""
from benchmarks.services.execute import run_execute
from benchmarks.services.lease import runs_reconcile
from benchmarks.services.plans import (
    plan_delete,
    plan_save,
    plan_schedule_clear,
    plan_schedule_set,
    workload_default,
    workload_save,
)
from benchmarks.services.repeats import repeat_execute, results_prune, summary_compute
from benchmarks.services.runs import busy_reason, plan_scheduled_delay, run_cancel, run_create, run_scheduled

__all__ = ["busy_reason", "plan_delete", "plan_save", "plan_schedule_clear", "plan_schedule_set",
           "plan_scheduled_delay", "repeat_execute", "results_prune", "run_cancel", "run_create", "run_execute",
           "run_scheduled", "runs_reconcile", "summary_compute", "workload_default", "workload_save"]
