"""HTTP as BEMS's connectors speak it to the outside (a weather provider, later webhooks):
bounded in time as a whole, bounded in size, and never led elsewhere by a redirect."""

from connectors.http.client import HttpError, get

__all__ = ["HttpError", "get"]
