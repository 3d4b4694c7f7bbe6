"""The connectors' bounded HTTP against misbehaving peers on loopback: a request ends by its
deadline whatever the server does, answers are bounded in size, redirects stay at home."""

from __future__ import annotations

import threading
import time

import pytest

from connectors.http import HttpError, get
from tests.httpservers import Drip, Redirect, Reply


def test_a_server_dripping_bytes_cannot_hold_a_request_past_its_deadline():
    # urlopen(timeout=1) would wait for ever here: each byte comes well within 1 s
    with Drip(every_s=0.2) as slow:
        done = threading.Event()
        errors: list[Exception] = []

        def ask() -> None:
            try:
                get(slow.url + "/forecast", deadline_s=1.0, max_bytes=1000)
            except HttpError as err:
                errors.append(err)
            done.set()

        threading.Thread(target=ask, daemon=True).start()
        # a generous bound (a loaded machine), far from "for ever"
        assert done.wait(30), "the request outlived its deadline"
        assert errors and "within 1 s" in str(errors[0])


@pytest.mark.parametrize("location", ["ftp://127.0.0.1/x", "file:///etc/passwd",
                                      "http://10.0.0.1/inside", "http://localhost:1/x",
                                      "https://127.0.0.1/other-scheme"])
def test_a_redirect_elsewhere_is_not_followed(location):
    with Redirect(location) as peer:
        with pytest.raises(HttpError, match="not followed"):
            get(peer.url + "/", 5, 1000)


def test_a_redirect_at_home_is_followed_and_answers_are_bounded():
    with Redirect("/moved") as peer:  # same origin: followed (here, round and round)
        with pytest.raises(HttpError, match="more than 3 redirects"):
            get(peer.url + "/", 5, 1000)
        assert len(peer.requests) == 4 and b"GET /moved " in peer.requests[-1]
    with Reply(200, b'{"ok": 1}') as home:
        assert get(home.url + "/", 5, 1000) == b'{"ok": 1}'
    with Reply(200, size=10_000_001) as big:
        with pytest.raises(HttpError, match="larger than"):
            get(big.url + "/", 10, 2_000_000)
    with Reply(500, b"oops") as bad:
        with pytest.raises(HttpError, match="HTTP 500"):
            get(bad.url + "/", 5, 1000)


def test_nothing_listening_is_unreachable_at_once():
    with Reply() as peer:
        url = peer.url
    t = time.monotonic()
    with pytest.raises(HttpError, match="unreachable"):
        get(url + "/", 5, 1000)
    assert time.monotonic() - t < 5
