"""No secret at rest in clear in what was kept before whole-match masking: a failed report's raw file is dropped
(it was never proven free of secrets), and a parsed report's is masked again, whatever its kind (the masking before
looked at Trivy reports only, and kept what came before a ":" or "="). A file that cannot be masked is dropped too.
Reports still being parsed are masked, or dropped, when their parse ends. A secret finding's shown match, which kept
what came before a ":" or "=", is starred whole: the original that would tell Trivy's mask apart is gone. Dropped
files and starred words cannot come back: going backwards changes nothing.
"""

import re

from django.db import migrations

NON_SPACE = re.compile(r"\S")
BATCH = 2000


def forwards(apps, schema_editor):
    from scanners import services  # the one masking rule; it touches the raw file and the file column only

    Report = apps.get_model("scanners", "Report")
    for report in Report.objects.exclude(file="").filter(status__in=["parsed", "failed"]).iterator():
        if report.status == "parsed" and not services.mask_stored_secrets(report):
            continue
        services.drop_raw_file(report)
        report.save(update_fields=["file"])
    Finding = apps.get_model("scanners", "Finding")
    starred = []
    for finding in Finding.objects.filter(finding_class="secret").only("pk", "detail").iterator(chunk_size=BATCH):
        finding.detail = NON_SPACE.sub("*", finding.detail)
        starred.append(finding)
        if len(starred) == BATCH:
            Finding.objects.bulk_update(starred, ["detail"])
            starred = []
    Finding.objects.bulk_update(starred, ["detail"])


class Migration(migrations.Migration):
    dependencies = [("scanners", "0005_finding_compared_with_production_when_read")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=True)]
