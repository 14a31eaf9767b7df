"""The one look of every list page's filter bar (`templates/_filters.html`)."""

from __future__ import annotations

from typing import Any

import django_filters


class FilterBar(django_filters.FilterSet):  # type: ignore[misc]  # django-filter has no types
    """A FilterSet whose fields come styled for the filter bar, so the monitor,
    the inquiries and the exception queue look and line up alike. Each choice
    filter names its empty choice ("Any carrier"): the default reads
    "---------"."""

    CSS = {"checkbox": "form-check-input", "select": "form-select"}

    @property
    def form(self) -> Any:
        # Styled when first built, not in __init__: a subclass may still be
        # filling in its filters (the queue's assignee choices) after super().
        if not hasattr(self, "_form"):
            form = super().form
            for bound in form:
                bound.field.widget.attrs.setdefault(
                    "class", self.CSS.get(bound.widget_type, "form-control")
                )
        return super().form
