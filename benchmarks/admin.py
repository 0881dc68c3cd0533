from django.contrib import admin

from benchmarks.models import BenchmarkPlan, BenchmarkResult, BenchmarkRun, BenchmarkSummary, PlanEntry, Workload


class PlanEntryInline(admin.TabularInline):
    model = PlanEntry
    extra = 0


@admin.register(Workload)
class WorkloadAdmin(admin.ModelAdmin):
    list_display = ("name", "dataset_name", "input_len", "output_len", "num_prompts", "request_rate", "backend")


@admin.register(BenchmarkPlan)
class BenchmarkPlanAdmin(admin.ModelAdmin):
    list_display = ("name", "workload", "warmups", "repeats", "tool", "only_if_idle")
    inlines = [PlanEntryInline]


@admin.register(BenchmarkRun)
class BenchmarkRunAdmin(admin.ModelAdmin):
    list_display = ("id", "plan_name", "status", "trigger", "requested_by", "created_at", "finished_at")
    list_filter = ("status", "trigger")
    readonly_fields = ("status", "config", "progress")


@admin.register(BenchmarkSummary)
class BenchmarkSummaryAdmin(admin.ModelAdmin):
    list_display = ("run", "profile_name", "status", "output_throughput", "median_ttft_ms", "spread_pct")


@admin.register(BenchmarkResult)
class BenchmarkResultAdmin(admin.ModelAdmin):
    list_display = ("summary", "repeat", "status", "created_at")
