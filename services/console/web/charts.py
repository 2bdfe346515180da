"""Bar charts drawn on the server as SVG: numbers in, geometry out (the template draws it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from shared.i18n import N_  # marks a message for the catalogues; translated where shown

WIDTH = 180  # the bars' full length, in SVG units (and CSS pixels: drawn at its size)
BAR = 22
GAP = 8
# Room for the labels before the bars: at least this, more for long ones (about 8 units a
# character at the chart's 14 px), and for the value written after the longest bar.
MIN_LABEL_WIDTH = 100
LABEL_CHARACTER = 8
VALUE_WIDTH = 60


@dataclasses.dataclass(frozen=True)
class Bar:
    label: str
    value: int
    y: int
    length: int
    text: str  # what is written beside the bar (the value, with its unit)


@dataclasses.dataclass(frozen=True)
class BarChart:
    title: str
    bars: tuple[Bar, ...]
    height: int
    width: int = WIDTH

    @property
    def empty(self) -> bool:
        return not any(bar.value for bar in self.bars)

    @property
    def label_width(self) -> int:
        longest = max((len(bar.label) for bar in self.bars), default=0)
        return max(MIN_LABEL_WIDTH, LABEL_CHARACTER * longest + GAP)

    @property
    def total_width(self) -> int:
        return self.label_width + self.width + VALUE_WIDTH


def bar_chart(
    title: str, values: Sequence[tuple[str, int | None]], *, top: int | None = None, unit: str = ""
) -> BarChart:
    """Horizontal bars scaled to ``top`` (default: the largest value; a zero stays a zero-length
    bar). A value of None has no bar and reads "—" (a rate with nothing to count)."""
    scale = top or max((value or 0 for _, value in values), default=0) or 1
    bars = tuple(
        Bar(
            label=label,
            value=value or 0,
            y=index * (BAR + GAP),
            length=round(WIDTH * min(value or 0, scale) / scale),
            text="—" if value is None else f"{value}{unit}",
        )
        for index, (label, value) in enumerate(values)
    )
    return BarChart(title=title, bars=bars, height=max(1, len(bars) * (BAR + GAP) - GAP))


# The labels are catalogue entries: the dashboard shows them in the person's language.
AGE_BUCKETS = ((1, N_("< 1 d")), (3, N_("1–3 d")), (7, N_("3–7 d")), (None, N_("> 7 d")))


def by_age(ages_in_days: Sequence[int]) -> list[tuple[str, int | None]]:
    """How many cases fall in each age bucket, youngest first."""
    counts = dict.fromkeys((label for _, label in AGE_BUCKETS), 0)
    for age in ages_in_days:
        for limit, label in AGE_BUCKETS:
            if limit is None or age < limit:
                counts[label] += 1
                break
    return list(counts.items())
