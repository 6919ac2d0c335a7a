"""Counting attempts and blocking with growing back-off: pure functions on a
:class:`~core.domain.Throttle` (storage keeps the rows, the use cases decide).

A throttle counts events (failed sign-ins, SMS codes sent) in a fixed window that starts
with the first event. The ``limit``-th event in a window blocks the subject for ``block``;
when ``growing``, every further block within ``forget_after`` of the last one doubles,
up to ``max_block``. A success may :func:`clear` the counter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.domain import Throttle

__all__ = ["ThrottlePolicy", "blocked_until", "record"]


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    limit: int
    window: timedelta
    block: timedelta
    growing: bool = False
    max_block: timedelta = timedelta(hours=24)
    forget_after: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window <= timedelta(0) or self.block <= timedelta(0):
            raise ValueError("a throttle needs a positive limit, window and block")

    def block_for(self, strikes: int) -> timedelta:
        """How long the ``strikes``-th block lasts (1 = the first)."""
        if not self.growing:
            return self.block
        # Doubling from the first block; capped before it can overflow.
        return min(self.block * (1 << min(max(strikes - 1, 0), 20)), self.max_block)


def blocked_until(throttle: Throttle | None, now: datetime) -> datetime | None:
    """The end of the block in force at ``now``, or None when not blocked."""
    if throttle is None or throttle.blocked_until is None:
        return None
    return throttle.blocked_until if now < throttle.blocked_until else None


def record(
    throttle: Throttle | None, kind: str, key: bytes, policy: ThrottlePolicy, now: datetime
) -> Throttle:
    """The counter after one more event at ``now`` (blocking when it reaches the limit)."""
    current = throttle or Throttle(kind=kind, key=key)
    strikes = current.strikes
    if current.blocked_until is not None and now - current.blocked_until >= policy.forget_after:
        strikes = 0  # calm for long enough: start the back-off from the beginning
    window_started = current.window_started_at
    count = current.count
    if window_started is None or now - window_started >= policy.window:
        window_started, count = now, 0
    count += 1
    if count < policy.limit:
        return dataclasses.replace(
            current, count=count, window_started_at=window_started, strikes=strikes
        )
    strikes += 1
    return dataclasses.replace(
        current,
        count=0,
        window_started_at=None,
        blocked_until=now + policy.block_for(strikes),
        strikes=strikes,
    )
