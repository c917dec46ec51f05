"""Attempts of one alert delivery, retried with exponential back-off and jitter (tenacity).

Every channel describes one attempt as an :class:`Outcome`; :func:`attempts` runs it until it
succeeds, fails for good, or runs out of attempts, and returns the last outcome with how many
attempts it took. It never raises for a failed delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

JITTER = 0.1  # each back-off grows by up to this share of the first, so many retries spread out

log = logging.getLogger("modeldeck.alerts")


@dataclass(frozen=True)
class Outcome:
    """What one attempt did: ``ok``; else whether trying again may help, and why it failed."""

    ok: bool
    retry: bool = False
    status_code: int | None = None  # of the response, when there was one
    error: str = ""


async def attempts(
    attempt: Callable[[], Awaitable[Outcome]],
    *,
    target: str,
    attempts: int,
    backoff_s: float,
    max_backoff_s: float,
) -> tuple[Outcome, int]:
    """Run ``attempt`` up to ``attempts`` times (at least once); the first retry waits
    ``backoff_s``, each next one twice as long, at most ``max_backoff_s`` (plus jitter)."""

    def log_retry(state: RetryCallState) -> None:
        outcome = state.outcome.result() if state.outcome else None
        error = outcome.error if outcome else ""
        log.info("%s attempt %d failed (%s); retrying", target, state.attempt_number, error)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(max(attempts, 1)),
        wait=wait_exponential(multiplier=backoff_s, max=max_backoff_s)
        + wait_random(0, backoff_s * JITTER),
        retry=retry_if_result(lambda o: not o.ok and o.retry),
        before_sleep=log_retry,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    outcome: Outcome = await retrying(attempt)
    tried = int(retrying.statistics.get("attempt_number", 1))
    if not outcome.ok:
        log.warning("%s failed after %d attempt(s): %s", target, tried, outcome.error)
    return outcome, tried
