"""Queryset helpers every app shares."""


def first(queryset):
    """The first row of a queryset, or None, without ordering unless the queryset asks for one (`.first()`
    orders by the primary key, a bare queryset by the model's default ordering)."""
    if not queryset.query.order_by:
        queryset = queryset.order_by()
    rows = list(queryset[:1])
    return rows[0] if rows else None
