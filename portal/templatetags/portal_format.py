from datetime import timedelta

from django import template

from portal.formats import moment

register = template.Library()


@register.filter
def duration(value: timedelta | None) -> str:
    """A duration as people read it: "45 s", "8 min 30 s", "23 h 29 min", "3 d 4 h"; "—" when unknown."""
    if value is None or value == "":
        return "—"
    seconds = int(round(value.total_seconds()))
    if seconds < 0:
        return "—"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    return f"{seconds} s"


@register.filter
def run_label(run) -> str:
    """How every page names a run (deliveries.models.run_label)."""
    return run.label



@register.filter
def when(value) -> str:
    """A moment as every page writes it: "2026-11-27 08:15 UTC" (portal.formats)."""
    return moment(value)
