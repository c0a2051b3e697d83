"""Paginators for lists of tables that grow without bound: the admin's runs, the project page's runs, an environment's
deployments, the audit log."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.utils.functional import cached_property


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP rows, plus one to know there are more (the database stops reading there), so a page
    costs the same with 100,000 runs as with 3,000. Past the cap the list offers the first COUNT_CAP rows' pages,
    `capped` says there are more ("1,000+", as GitLab caps its pipeline counts), and a filter narrows the list to
    the rest. 1,000 rather than more: reading the cap's rows is most of a capped page's SQL (10,000 cost PostgreSQL
    about 9 ms)."""

    COUNT_CAP = 1_000

    @cached_property
    def counted(self) -> int:
        # In the list's own order, which its index answers from the start: unordered, PostgreSQL's cached (generic)
        # plan for "environment = $1" read the whole deployments table when the environment had fewer rows than the cap.
        return self.object_list[: self.COUNT_CAP + 1].count()

    @cached_property
    def count(self) -> int:
        return min(self.counted, self.COUNT_CAP)

    @property
    def capped(self) -> bool:
        return self.counted > self.COUNT_CAP
