"""A clock a test moves by hand (BEMS's runtime and screens take `clock=`)."""

from __future__ import annotations

import datetime as dt


class Clock:
    def __init__(self, t: dt.datetime):
        self.t = t

    def __call__(self) -> dt.datetime:
        return self.t
