"""Paginators for lists of tables that grow without bound: the admin's runs, the project page's runs, an environment's
deployments, the audit log."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.utils.functional import cached_property


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP rows, plus one to know there are more (the database stops reading there), so page 1
    costs the same with 100,000 runs as with 1,000. Past the cap the list offers the first COUNT_CAP rows' pages,
    `capped` says there are more ("10,000+"), and a filter narrows the list to the rest."""

    COUNT_CAP = 10_000

    @cached_property
    def counted(self) -> int:
        # unordered: any COUNT_CAP + 1 rows tell as much as the first ones, and the database may take them from
        # whichever index narrows the list
        return self.object_list.order_by()[: self.COUNT_CAP + 1].count()

    @cached_property
    def count(self) -> int:
        return min(self.counted, self.COUNT_CAP)

    @property
    def capped(self) -> bool:
        return self.counted > self.COUNT_CAP
