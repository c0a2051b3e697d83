"""Admin change lists that answer garbage in their query string as Django answers most of it: the list again,
with "?e=1" (Django's IncorrectLookupParameters), never a 500."""

from __future__ import annotations

from django.contrib.admin.options import IncorrectLookupParameters
from django.core.paginator import Paginator
from django.utils.functional import cached_property


class GarbageTolerantChangeList:
    """A ModelAdmin mixin. Django's date hierarchy turns `?created_at__year=99999999999999999999` into a
    datetime and catches ValueError only; the OverflowError is a 500 without this."""

    def get_changelist_instance(self, request):
        try:
            return super().get_changelist_instance(request)
        except OverflowError as exc:
            raise IncorrectLookupParameters(exc) from exc


class CappedCountPaginator(Paginator):
    """A paginator for change lists of tables that grow without bound: it counts at most COUNT_CAP rows (the
    database stops reading there), so page 1 costs the same with 100,000 runs as with 1,000. Past the cap the
    list offers the first COUNT_CAP rows' pages: a filter or a search narrows it to the rest."""

    COUNT_CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.COUNT_CAP].count()
