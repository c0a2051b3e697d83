"""Admin change lists that answer garbage in their query string as Django answers most of it: the list again,
with "?e=1" (Django's IncorrectLookupParameters), never a 500."""

from __future__ import annotations

from django.contrib.admin.options import IncorrectLookupParameters


class GarbageTolerantChangeList:
    """A ModelAdmin mixin. Django's date hierarchy turns `?created_at__year=99999999999999999999` into a
    datetime and catches ValueError only; the OverflowError is a 500 without this."""

    def get_changelist_instance(self, request):
        try:
            return super().get_changelist_instance(request)
        except OverflowError as exc:
            raise IncorrectLookupParameters(exc) from exc
