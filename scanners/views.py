from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from portal.roles import role_required
from scanners.models import Report


@require_GET
@role_required()
def report_detail(request, report_id):
    report = get_object_or_404(Report.objects.select_related("run__project"), pk=report_id)
    return render(request, "scanners/report_detail.html", {"report": report, "run": report.run})
