"""Template builtins (settings.TEMPLATES) that replace Django's `date` and
`time` filters: the same output, but a stored time at the edge of the calendar
is shown in UTC instead of making the page answer 500 (`tracksop.dates`).

Django's own filters ask the template engine to convert the value to the
current zone before they run, where an OverflowError cannot be caught; these
convert it themselves. A value that code already placed in a zone (the public
page shows times where they happened) is kept in that zone, as Django keeps it
under {% localtime off %}; values straight from the database are in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import template
from django.conf import settings
from django.template import defaultfilters

from tracksop import dates

register = template.Library()


def _local(value: Any) -> Any:
    if (
        isinstance(value, datetime)
        and settings.USE_TZ
        and value.tzinfo is UTC
        and value.utcoffset() is not None
    ):
        return dates.localtime(value)
    return value


@register.filter(is_safe=False)
def date(value: Any, arg: str | None = None) -> str:
    return defaultfilters.date(_local(value), arg)


@register.filter(is_safe=False)
def time(value: Any, arg: str | None = None) -> str:
    return defaultfilters.time(_local(value), arg)


@register.filter(is_safe=False)
def in_zone(value: Any, zone: str) -> Any:
    """Like tz's `timezone` filter, for a zone that may have no room for it."""
    from django.templatetags.tz import do_timezone

    try:
        return do_timezone(value, zone)
    except OverflowError:
        return value
