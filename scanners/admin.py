from django.contrib import admin

from portal.admin_lists import GarbageTolerantChangeList
from scanners.models import AttackScenario, Finding, LoadTestBucket, LoadTestStat, Report


@admin.register(Report)
class ReportAdmin(GarbageTolerantChangeList, admin.ModelAdmin):
    list_display = ["id", "kind", "original_name", "run", "status", "size_bytes", "created_at", "parsed_at"]
    list_filter = ["kind", "status"]
    search_fields = ["original_name", "sha256", "error"]
    list_select_related = ["run__project"]
    raw_id_fields = ["run"]
    readonly_fields = ["sha256", "size_bytes", "summary", "parsed_at"]


@admin.register(Finding)
class FindingAdmin(GarbageTolerantChangeList, admin.ModelAdmin):
    list_display = ["identifier", "severity", "finding_class", "package", "installed_version", "fixed_version", "run"]
    list_filter = ["severity", "finding_class", "new_on_branch"]
    search_fields = ["identifier", "package", "title", "target"]
    list_select_related = ["run__project"]
    raw_id_fields = ["report", "run"]
    show_full_result_count = False


@admin.register(AttackScenario)
class AttackScenarioAdmin(GarbageTolerantChangeList, admin.ModelAdmin):
    list_display = ["name", "feature", "status", "duration_ms", "run"]
    list_filter = ["status"]
    search_fields = ["name", "feature", "failure_message"]
    list_select_related = ["run__project"]
    raw_id_fields = ["report", "run"]


@admin.register(LoadTestStat)
class LoadTestStatAdmin(GarbageTolerantChangeList, admin.ModelAdmin):
    list_display = ["label", "is_total", "samples", "errors", "mean_ms", "p95_ms", "throughput", "run"]
    list_select_related = ["run__project"]
    raw_id_fields = ["report", "run"]


@admin.register(LoadTestBucket)
class LoadTestBucketAdmin(GarbageTolerantChangeList, admin.ModelAdmin):
    list_display = ["report", "started_at", "samples", "errors", "mean_ms", "p95_ms", "active_threads"]
    raw_id_fields = ["report"]
