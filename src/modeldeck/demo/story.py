"""``modeldeck demo --story`` (what ``make run`` does): a few minutes of traffic that visibly
change, so that the monitoring views have something to show.

The first half is clean traffic (reference rows) whose ground truth arrives a few seconds
later and is right; from the middle on, ``petal_length`` is shifted by +2 (data drift) and the
ground truth turns wrong (concept drift), so the Drift tab turns the column red, the Model
metrics tab draws accuracy falling, and ``modeldeck drift``, ``modeldeck performance`` and
``modeldeck report`` say the same (each fits its window to the few minutes of data). The
traffic and labels are :func:`modeldeck.simulate.simulate`'s.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modeldeck.simulate import FeatureDrift, Progress, Result, simulate

if TYPE_CHECKING:
    from modeldeck.client import Client

DRIFT = FeatureDrift("petal_length", shift=2.0)
RATE = 5.0
"""Requests per second."""
LABEL_DELAY = 3.0
"""Seconds between a prediction's answer and its ground truth."""
SEED = 7


class StoryStopped(Exception):
    """The platform stopped before the story ended."""


@dataclass(frozen=True)
class Story:
    """How long the story runs, how fast, and when it turns."""

    minutes: float
    rate: float = RATE
    label_delay: float = LABEL_DELAY

    @property
    def seconds(self) -> float:
        return self.minutes * 60

    @property
    def requests(self) -> int:
        return max(2, math.ceil(self.seconds * self.rate))

    @property
    def turn(self) -> int:
        """The first request of the drifted half."""
        return self.requests // 2

    def phase(self, sent: int) -> str:
        if sent < self.turn:
            return "clean traffic, labels right"
        return f"{DRIFT.column} shifted by +{DRIFT.shift:g}, labels wrong"


def run_story(
    client: Client,
    deployment: str,
    story: Story,
    *,
    access_key: str | None,
    say: Callable[[str], None],
    stop: threading.Event | None = None,
) -> Result:
    """Play ``story`` against ``deployment``, saying where it is about every fifteen seconds
    (and when it turns); returns once every label is delivered. Setting ``stop`` ends it early
    (:class:`StoryStopped`)."""
    every = min(15.0, max(2.0, story.seconds / 12))
    said_at = [-math.inf]
    said_phase = [""]
    started = time.monotonic()

    def progress(p: Progress) -> None:
        if stop is not None and stop.is_set():
            raise StoryStopped
        phase = story.phase(p.sent) if p.phase == "traffic" else "waiting for the last labels"
        now = time.monotonic() - started
        if phase == said_phase[0] and now - said_at[0] < every:
            return
        said_phase[0], said_at[0] = phase, now
        say(
            f"story {_clock(p.elapsed)} / {_clock(story.seconds)}  {phase}: "
            f"{p.ok:,} predictions, {p.labels_sent:,} labels"
            + (f", {p.failed:,} failed" if p.failed else "")
        )

    say(
        f"story: {story.minutes:g} min of traffic to {deployment} ({story.requests:,} "
        f"predictions, ground truth {story.label_delay:g} s after each); halfway "
        f"{DRIFT.column} shifts by +{DRIFT.shift:g} and the labels turn wrong"
    )
    result = simulate(
        client,
        deployment,
        requests=story.requests,
        rate=story.rate,
        concurrency=2,
        seed=SEED,
        source="reference",
        labels="reference",
        drifts=[DRIFT],
        drift_start=story.turn,
        flip_after=story.turn,
        label_delay=story.label_delay,
        access_key=access_key,
        on_progress=progress,
    )
    say(
        f"story over: {result.ok:,} predictions ({result.failed:,} failed), "
        f"{result.labels_sent:,} labels. The Drift tab shows {DRIFT.column} drifted, Model "
        f"metrics accuracy falling; so do `modeldeck drift {deployment}`, `modeldeck "
        f"performance {deployment}` and `modeldeck report {deployment}`."
    )
    return result


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"
