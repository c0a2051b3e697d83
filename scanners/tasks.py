"""django-q2 entry points of the scanners app: they take ids and call a service."""

from scanners import services


def ingest_report(report_id: int) -> str:
    return services.ingest_report(report_id=report_id).status


def reap_stuck_reports() -> dict:
    """The reaper's Schedule (created by migration scanners 0007): reports stuck waiting or parsing."""
    return services.reap_stuck_reports()
