from datetime import timedelta

import pytest

from portal.templatetags.portal_format import duration


@pytest.mark.parametrize(
    "value,shown",
    [
        (None, "—"),
        (timedelta(seconds=45.4), "45 s"),
        (timedelta(minutes=8, seconds=30.5), "8 min 30 s"),
        (timedelta(minutes=8), "8 min"),
        (timedelta(hours=23, minutes=28, seconds=48.58), "23 h 28 min"),
        (timedelta(days=3, hours=4, minutes=5), "3 d 4 h"),
        (timedelta(seconds=-5), "—"),
    ],
)
def test_it_shows_durations_as_people_read_them(value, shown):
    assert duration(value) == shown


def test_it_writes_every_moment_one_way_with_the_time_zone(settings):
    from datetime import UTC, datetime

    from portal.templatetags.portal_format import when

    moment = datetime(2026, 11, 27, 8, 15, 42, tzinfo=UTC)
    assert when(moment) == "2026-11-27 08:15 UTC"
    assert when("2026-11-27T08:15:42+00:00") == "2026-11-27 08:15 UTC"  # as report summaries keep it
    assert when(None) == when("") == "—"
    settings.TIME_ZONE = "Europe/Paris"
    assert when(moment) == "2026-11-27 09:15 CET"
