"""The site file's tables of BEMS's links to the outside: its own BACnet/IP port, the web UI,
the outdoor forecast's provider, and the city portfolio (`bems.config` reads the rest)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bems.site import Bacnet, Web, canonical_address, canonical_ip_address
from bems.tomlreader import Path_, _one_of, _Reader

def interface_ok(v: str) -> str | None:
    """ADDRESS/PREFIX (an IPv4 address and a prefix length) or an interface name."""
    m = re.fullmatch(r"(\d{1,3}(?:\.\d{1,3}){3})/(\d{1,2})", v)
    if m:
        ok = all(int(x) < 256 for x in m.group(1).split(".")) and 0 < int(m.group(2)) <= 32
        return None if ok else f"must be ADDRESS/PREFIX like 192.168.10.5/24, got {v!r}"
    if re.fullmatch(r"[A-Za-z0-9_.:\-]{1,15}", v):
        return None  # an interface name, resolved on the machine that runs BEMS
    return f"must be ADDRESS/PREFIX (192.168.10.5/24) or an interface name (eth0), got {v!r}"


def _bacnet(r: _Reader, d: Any) -> Bacnet:
    p: Path_ = ("bacnet",)
    d = r.table(d, p, ("interface", "port", "instance", "name", "bbmd", "bbmd_ttl",
                       "time_sync"))
    bbmd = r.get(d, p, "bbmd", str, None,
                 lambda v: None if canonical_ip_address(v)
                 else f"must be IPV4-ADDRESS:PORT, got {v[:60]!r}")
    return Bacnet(interface=r.get(d, p, "interface", str, "127.0.0.1/8", interface_ok),
                  port=r.get(d, p, "port", int, 47808,
                             lambda v: None if 0 < v < 65536 else "must be 1..65535"),
                  instance=r.get(d, p, "instance", int, 599999,
                                 lambda v: None if 0 <= v < 4194303 else "must be 0..4194302"),
                  name=r.get(d, p, "name", str, "BEMS"),
                  bbmd=canonical_ip_address(bbmd) if bbmd else None,
                  bbmd_ttl=r.get(d, p, "bbmd_ttl", int, 300,
                                 lambda v: None if 30 <= v <= 65535 else "must be 30..65535"),
                  time_sync=r.get(d, p, "time_sync", bool, False))


def _web(r: _Reader, d: Any, source: Path | None) -> Web:
    p: Path_ = ("web",)
    d = r.table(d, p, ("host", "port", "certificate", "private_key", "trust_proxy",
                       "session_hours"))
    web = Web(host=r.get(d, p, "host", str, "127.0.0.1",
                         lambda v: None if canonical_address(v) or v in ("0.0.0.0", "::")
                         else f"must be an address to listen on, got {v!r}"),
              port=r.get(d, p, "port", int, 8080,
                         lambda v: None if 0 < v < 65536 else "must be 1..65535"),
              certificate=r.file_path(d, p, "certificate", source),
              private_key=r.file_path(d, p, "private_key", source),
              trust_proxy=r.get(d, p, "trust_proxy", bool, False),
              session_hours=r.get(d, p, "session_hours", float, 10.0,
                                  lambda v: None if 0.1 <= v <= 24 * 7 else "must be 0.1..168"))
    if (web.certificate is None) != (web.private_key is None):
        r.error(p + ("private_key",), "certificate and private_key go together")
    return web


def _weather(r: _Reader, d: Any):
    from urllib.parse import urlsplit

    from bems.site import Weather

    p = ("weather",)
    d = r.table(d, p, ("url", "refresh_min", "timeout_s"))

    def url_ok(v: str) -> str | None:
        try:
            u = urlsplit(v)
        except ValueError:
            return "must be an http:// or https:// address"
        if u.scheme not in ("http", "https") or not u.hostname:
            return "must be an http:// or https:// address"
        return None

    url = r.get(d, p, "url", str, ..., url_ok)
    refresh = r.get(d, p, "refresh_min", float, 60.0,
                    lambda v: None if 5 <= v <= 1440 else "must be 5..1440 minutes")
    timeout = r.get(d, p, "timeout_s", float, 10.0,
                    lambda v: None if 1 <= v <= 120 else "must be 1..120 seconds")
    return Weather(url, refresh, timeout) if url else None


def _portfolio(r: _Reader, d: Any, source: Path | None):
    from urllib.parse import urlsplit

    from bems.portfolio.schema import site_ok
    from bems.site import Portfolio

    p: Path_ = ("portfolio",)
    d = r.table(d, p, ("broker", "site_id", "username", "password_file", "ca_file", "cert_file",
                       "key_file", "readings", "interval_s", "keep_sent_days", "max_unsent"))
    def broker_ok(v: str) -> str | None:
        try:
            u = urlsplit(v)
            port = u.port
        except ValueError:
            return "must be mqtt://HOST:PORT or mqtts://HOST:PORT"
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname or u.path not in ("", "/") \
                or port == 0:
            return "must be mqtt://HOST:PORT or mqtts://HOST:PORT"
        return None

    broker = r.get(d, p, "broker", str, ..., broker_ok)
    site_id = r.get(d, p, "site_id", str, ...,
                    lambda v: None if site_ok(v) else
                    "must be 1..40 lower-case letters, digits or '-', starting with a letter "
                    "or digit, and not 'ingest…' (the city's own clients)")
    user = r.get(d, p, "username", str, None)
    if user is not None and site_id is not None and user != site_id:
        # the broker's ACL and client ids are the site id: another name could never publish
        r.error(p + ("username",), f"must be the site id {site_id!r} (the broker's ACL "
                                   "gives a centre the topics named after its user name)")
    pf = Portfolio(
        broker=broker or "", site_id=site_id or "", username=user,
        password_file=r.file_path(d, p, "password_file", source),
        ca_file=r.file_path(d, p, "ca_file", source), cert_file=r.file_path(d, p, "cert_file", source),
        key_file=r.file_path(d, p, "key_file", source),
        readings=r.get(d, p, "readings", str, "15m", _one_of(("raw", "15m"))),
        interval_s=r.get(d, p, "interval_s", int, 60,
                         lambda v: None if 5 <= v <= 3600 else "must be 5..3600 seconds"),
        keep_sent_days=r.get(d, p, "keep_sent_days", int, 7,
                             lambda v: None if 1 <= v <= 365 else "must be 1..365 days"),
        max_unsent=r.get(d, p, "max_unsent", int, 2_000_000,
                         lambda v: None if 1000 <= v <= 100_000_000 else
                         "must be 1000..100000000 messages"))
    if (pf.cert_file is None) != (pf.key_file is None):
        r.error(p + ("cert_file",), "cert_file and key_file go together")
    if pf.broker.startswith("mqtt://") and pf.password_file is not None:
        r.error(p + ("broker",), "a password is only sent over TLS: use mqtts://")
    return pf




EMAIL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                   r"[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


def email_ok(v: str) -> str | None:
    if len(v) <= 254 and EMAIL.fullmatch(v):
        return None
    return f"must be an e-mail address like kythuat@trungtam.example.vn, got {v[:60]!r}"


def _http_url_ok(v: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        u = urlsplit(v)
        u.port
    except ValueError:
        return "must be an http:// or https:// address"
    if u.scheme not in ("http", "https") or not u.hostname or any(c in v for c in " \r\n\t"):
        return "must be an http:// or https:// address"
    return None


def _quiet_hours(v: str) -> str | None:
    m = re.fullmatch(r"(\d\d):(\d\d)-(\d\d):(\d\d)", v)
    if not m or int(m[1]) > 23 or int(m[3]) > 23 or int(m[2]) > 59 or int(m[4]) > 59 \
            or m.group(1, 2) == m.group(3, 4):
        return f"must be HH:MM-HH:MM like 22:00-06:00, got {v[:40]!r}"
    return None


def _name_ok(v: str) -> str | None:
    if not v.strip() or len(v) > 100 or any(ord(c) < 32 or ord(c) == 127 for c in v):
        return "must be a name of 1..100 characters without control characters"
    return None


def _notify(r: _Reader, d: Any, source: Path | None):
    import datetime as dt
    from urllib.parse import urlsplit

    from bems.site import SEVERITIES, Notify, Recipient

    p: Path_ = ("notify",)
    d = r.table(d, p, ("smtp", "starttls", "from", "username", "password_file", "base_url",
                       "damp_min", "timeout_s", "recipients"))

    def smtp_ok(v: str) -> str | None:
        try:
            u = urlsplit(v)
            u.port
        except ValueError:
            u = None
        if u is None or u.scheme not in ("smtp", "smtps") or not u.hostname or \
                u.path not in ("", "/") or u.username or u.port == 0:
            return "must be smtp://HOST:PORT or smtps://HOST:PORT (the password goes in " \
                   "password_file)"
        return None

    smtp = r.get(d, p, "smtp", str, None, smtp_ok)
    starttls = r.get(d, p, "starttls", bool, False)
    sender = r.get(d, p, "from", str, "", email_ok)
    recipients = []
    for i, rd in enumerate(d.get("recipients", []) if isinstance(d.get("recipients", []), list)
                           else []):
        rp = p + ("recipients", i)
        rd = r.table(rd, rp, ("name", "email", "webhook", "secret_file", "lang", "min_severity",
                              "escalate_after_min", "quiet_hours"))
        email = r.get(rd, rp, "email", str, None, email_ok)
        hook = r.get(rd, rp, "webhook", str, None, _http_url_ok)
        if "email" not in rd and "webhook" not in rd:
            r.error(rp, "a recipient needs an email, a webhook, or both")
        if email and not smtp:
            r.error(rp + ("email",), "e-mail needs [notify] smtp (the mail relay)")
        quiet = r.get(rd, rp, "quiet_hours", str, None, _quiet_hours)
        recipients.append(Recipient(
            name=r.get(rd, rp, "name", str, ..., _name_ok) or "", email=email, webhook=hook,
            secret_file=r.file_path(rd, rp, "secret_file", source),
            lang=r.get(rd, rp, "lang", str, "vi", _one_of(("vi", "en"))),
            min_severity=r.get(rd, rp, "min_severity", str, "warning", _one_of(SEVERITIES)),
            escalate_after_min=r.get(rd, rp, "escalate_after_min", float, None,
                                     lambda v: None if 1 <= v <= 7 * 24 * 60 else
                                     "must be 1..10080 minutes"),
            quiet_hours=(dt.time(int(quiet[:2]), int(quiet[3:5])),
                         dt.time(int(quiet[6:8]), int(quiet[9:11]))) if quiet else None))
    if "recipients" in d and not isinstance(d["recipients"], list):
        r.error(p + ("recipients",), "must be an array of tables ([[notify.recipients]])")
    elif not recipients:
        r.error(p, "[notify] needs at least one [[notify.recipients]]")
    names = [x.name for x in recipients]
    for n in {n for n in names if names.count(n) > 1}:
        r.error(p + ("recipients",), f"two recipients are named {n!r}")
    if smtp and not sender:
        r.error(p + ("from",), "e-mail needs a from address")
    nf = Notify(recipients=tuple(recipients), smtp=smtp, starttls=starttls, sender=sender or "",
                username=r.get(d, p, "username", str, None, _name_ok),
                password_file=r.file_path(d, p, "password_file", source),
                base_url=r.get(d, p, "base_url", str, None, _http_url_ok),
                damp_min=r.get(d, p, "damp_min", float, 30.0,
                               lambda v: None if 0 <= v <= 24 * 60 else "must be 0..1440 minutes"),
                timeout_s=r.get(d, p, "timeout_s", float, 10.0,
                                lambda v: None if 1 <= v <= 120 else "must be 1..120 seconds"))
    if nf.password_file is not None and nf.smtp and nf.smtp.startswith("smtp://") \
            and not nf.starttls:
        r.error(p + ("smtp",), "a password is only sent over TLS: use smtps:// or "
                               "starttls = true")
    if (nf.username is None) != (nf.password_file is None):
        r.error(p + ("username",), "username and password_file go together")
    return nf
