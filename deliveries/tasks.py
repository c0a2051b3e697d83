"""django-q2 entry points of the deliveries app: they take ids and call a service (deliveries.triggers)."""

from deliveries import triggers


def trigger_run(run_id: int) -> str:
    """Queue the run's build on Jenkins and look at its queue item (again later, while it waits); returns the
    run's status."""
    return triggers.trigger_build(run_id=run_id).status


def follow_queue(run_id: int, check: int) -> str:
    """Look again at the run's Jenkins queue item (queued by a one-off Schedule); returns the run's status."""
    return triggers.follow_queue(run_id=run_id, check=check).status


def abort_run(run_id: int) -> str:
    """Cancel the run's queue item or stop its build; returns the run's status."""
    return triggers.abort_build(run_id=run_id).status


def reconcile_runs() -> dict:
    """The reconciler's Schedule (created by migration deliveries 0007): ask Jenkins about quiet runs."""
    return triggers.reconcile_runs()
