"""The one rule of how a reported status moves, for runs, stages and deployments alike.

Callbacks arrive late, twice and in any order. A status only moves forward through its steps (queued, then
running, then finished): a new status replaces the current one when it is at least as far along, so a finished
result may correct another, and a late "running" never reopens what has finished.
"""

from __future__ import annotations

from collections.abc import Iterable

from deliveries.models import FINISHED_RUN_STATUSES, RunStatus, StageStatus


class StatusOrder:
    """The steps a status moves through, each a set of statuses of the same standing."""

    def __init__(self, *steps: Iterable[str]):
        self.step = {status: index for index, statuses in enumerate(steps) for status in statuses}

    def allows(self, current: str, new: str) -> bool:
        """Whether a reported `new` status may replace `current`."""
        return self.step[new] >= self.step[current]


RUN_ORDER = StatusOrder([RunStatus.QUEUED], [RunStatus.RUNNING], FINISHED_RUN_STATUSES)
STAGE_ORDER = StatusOrder(
    [StageStatus.PENDING], [StageStatus.RUNNING],
    [status for status in StageStatus if status not in (StageStatus.PENDING, StageStatus.RUNNING)],
)
