"""Alarms and new faults sent to people: by e-mail (an SMTP relay) and by webhook (a JSON POST
signed with HMAC-SHA256, the bridge to the chat or SMS gateway an agency runs).

Two steps, both run by the runtime:

- `evaluate` (every minute; `at_start` when the runtime starts): the active alarms are
  compared with the alarm log (an occurrence opens when an alarm becomes active and closes
  when it clears), and each event queues a
  message per recipient and channel in the store, in the recipient's language, by their
  policy: `min_severity`; `escalate_after_min` (only if still open and unacknowledged after N
  minutes); `quiet_hours` (held until they end, except critical); flapping damped (an alarm
  raised again within `damp_min` of its last message is not sent again, nor its clearing).
  New faults (with their cost) and an outage of the runtime itself (found at its next start)
  are events too.
- `deliver` (every 30 s): what is due goes out, one message per recipient and channel (a
  digest when several are due at once); a relay or webhook that is down is retried with
  back-off (1 minute doubling to 30), and nothing is marked sent before it was accepted. So a
  restart or a crash loses nothing; the message in flight at a crash may go twice, with the
  same Message-ID (e-mail) or X-BEMS-Delivery (webhook) so the receiver can tell.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import hashlib
import hmac
import http.client
import json
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import urlsplit

from bems.formatting import number
from bems.i18n import N_, tr
from bems.site import Notify, Recipient, Site
from bems.state import ALARMS_ALIVE_AT, NOTIFY_FAULTS_AFTER
from bems.status import SEVERITY, alarm_text, alarms

log = logging.getLogger(__name__)

RANK = {"info": 0, "warning": 1, "critical": 2}
RETRY_FIRST_S = 60
RETRY_MAX_S = 30 * 60
MAX_RESPONSE = 64 * 1024  # what is read of a webhook's answer
OUTAGE_S = 10 * 60  # a gap in the runtime's minute-by-minute evaluation this long is told
# lines up to RFC 5322's limit: Python's header folding at 78 drops the space between two
# encoded words ("dữ liệu" read back as "dữliệu"); a subject is at most 200 characters
MAIL_POLICY = email.policy.default.clone(max_line_length=998)

# a test message's title (the alarms' own texts are bems.status's)
TEST_TEXT = N_("Test message from BEMS (%(name)s)")
WORDS = {
    "raised": "",
    "cleared": N_("Resolved: "),
    "test": "",
    "info": N_("Info"),
    "warning": N_("Warning"),
    "critical": N_("Critical"),
    "digest": N_("{n} messages from BEMS at {site}"),
    "at": N_("at"),
    "open": N_("Open"),
    "cost": N_("about {vnd} VND a day"),
    "footer": N_("Sent by BEMS for {site}. Acknowledge alarms in the BEMS web UI."),
}


def _w(key: str, lang: str) -> str:
    return tr(lang, WORDS[key])


def _time(t: dt.datetime, site: Site) -> str:
    return t.astimezone(site.tz).strftime("%H:%M %d/%m/%Y")


def message(site: Site, event: str, kind: str, severity: str, target: str, value: float | None,
            at: dt.datetime, lang: str, link: str | None = None, extra: str = "") -> dict:
    """One event as a recipient reads it: subject, text, and the fields a webhook sends."""
    title = (tr(lang, TEST_TEXT) % {"name": target} if kind == "test"
             else alarm_text(kind, target, value, lang))
    subject = f"[{_w(severity, lang)}] {_w(event, lang)}{title}"
    lines = [subject, f"{site.name} · {_time(at, site)}"]
    if extra:
        lines.append(extra)
    if link:
        lines.append(link)
    return {"subject": subject[:200], "text": "\n".join(lines)[:4000], "event": event,
            "kind": kind, "severity": severity, "target": target[:200], "value": value,
            "at": at.astimezone(dt.timezone.utc).isoformat(), "link": link, "lang": lang}


def _link(nf: Notify, path: str) -> str | None:
    return nf.base_url.rstrip("/") + path if nf.base_url else None


def _channels(r: Recipient) -> list[str]:
    return [c for c, v in (("email", r.email), ("webhook", r.webhook)) if v]


def _quiet_until(r: Recipient, severity: str, now: dt.datetime, site: Site) -> dt.datetime:
    """When a message may go: now, or the end of the recipient's quiet hours (critical
    messages go through)."""
    if r.quiet_hours is None or severity == "critical":
        return now
    start, end = r.quiet_hours
    local = now.astimezone(site.tz)
    t = local.time().replace(tzinfo=None)
    inside = (start <= t < end) if start < end else (t >= start or t < end)
    if not inside:
        return now
    day = local.date() if t < end else local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, end, tzinfo=site.tz).astimezone(dt.timezone.utc)


def _wants(r: Recipient, severity: str) -> bool:
    return RANK[severity] >= RANK[r.min_severity]


def _rows(site: Site, nf: Notify, ref: str, key: str, event: str, kind: str,
          severity: str, target: str, value: float | None, at: dt.datetime, now: dt.datetime,
          link_path: str, extra: dict[str, str] | None = None,
          who=lambda r: True) -> list[dict]:
    out = []
    for r in nf.recipients:
        if not _wants(r, severity) or not who(r):
            continue
        body = message(site, event, kind, severity, target, value, at, r.lang,
                       _link(nf, link_path), (extra or {}).get(r.lang, ""))
        for ch in _channels(r):
            out.append({"ref": ref, "key": key, "event": event, "recipient": r.name,
                        "channel": ch, "severity": severity, "body": body,
                        "due": _quiet_until(r, severity, now, site)})
    return out


def evaluate(site: Site, store, now: dt.datetime) -> list[tuple[str, dict]]:
    """Log the alarms' events and queue the messages they cause. Returns the events."""
    events = store.sync_alarms(alarms(site, store, now), now)
    store.put(ALARMS_ALIVE_AT, int(now.timestamp()))
    return events + _queue(site, store, events, now)


def at_start(site: Site, store, now: dt.datetime) -> list[tuple[str, dict]]:
    """When the runtime starts: if the alarms were last evaluated more than ten minutes ago
    (BEMS down, the machine off), that outage is logged and told."""
    outage = _outage(site, store, now)
    if outage is None or any(a["key"] == STOPPED for a in store.open_alarms()):
        return []  # (the web process's watch told it while it lasted; its clearing follows)
    events = [("raised", outage)]
    _queue(site, store, events, now)
    return events


def _queue(site: Site, store, events: list[tuple[str, dict]], now: dt.datetime,
           faults: bool = True) -> list:
    """Queue the messages the events cause, escalations that are due, and new faults."""
    nf = site.notify
    if nf is None:
        return []
    rows: list[dict] = []
    for event, e in events:
        ref = f"alarm:{e['id']}"
        link = f"/alarms/history?key={e['key']}"
        if event == "raised":
            def fresh(r: Recipient, e=e) -> bool:  # escalation waits; a flapping alarm is damped
                if r.escalate_after_min is not None and e["kind"] != "runtime_down":
                    return False
                last = [store.last_raised(e["key"], r.name, ch) for ch in _channels(r)]
                return not any(t is not None and now - t < dt.timedelta(minutes=nf.damp_min)
                               for t in last)
            rows += _rows(site, nf, ref, e["key"], "raised", e["kind"], e["severity"],
                          e["target"], e["value"], e["raised"], now, link, who=fresh)
        else:  # cleared: to whoever was told it was raised
            rows += _rows(site, nf, ref, e["key"], "cleared", e["kind"], e["severity"],
                          e["target"], e["value"], e["cleared"], now, link,
                          who=lambda r, ref=ref: any("raised" in store.notified(ref, r.name, ch)
                                                     for ch in _channels(r)))
    # escalation: still open and unacknowledged after the recipient's minutes
    for e in store.open_alarms():
        if e["acked"] is not None:
            continue
        ref = f"alarm:{e['id']}"
        for r in nf.recipients:
            if r.escalate_after_min is None or \
                    now - e["raised"] < dt.timedelta(minutes=r.escalate_after_min) or \
                    all("raised" in store.notified(ref, r.name, ch) for ch in _channels(r)):
                continue
            rows += _rows(site, nf, ref, e["key"], "raised", e["kind"], e["severity"],
                          e["target"], e["value"], e["raised"], now,
                          f"/alarms/history?key={e['key']}", who=lambda x, r=r: x is r)
    if faults:
        rows += _new_faults(site, store, nf, now)
    if rows:
        store.enqueue_notifications(rows, now)
    return []


STOPPED = "runtime:stopped"


def watch(site: Site, store, now: dt.datetime, limit_s: float) -> dict[str, int]:
    """The web process's watch over the runtime (`bems web` beside `bems run`): when the
    runtime's poll has not run for `limit_s`, an alarm is opened and told at once (the runtime
    cannot tell its own hang or crash); when the runtime runs again, its first evaluation
    clears it and sends the "resolved" message. Returns delivery counts."""
    from bems.state import JOBS_ALIVE

    last = store.get(JOBS_ALIVE).get("poll")
    if not isinstance(last, int) or site.notify is None:
        return {"sent": 0, "events": 0, "failed": 0}
    since = dt.datetime.fromtimestamp(last, dt.timezone.utc)
    entry = next((a for a in store.open_alarms() if a["key"] == STOPPED), None)
    if entry is None and (now - since).total_seconds() > limit_s:
        entry = store.open_alarm({"key": STOPPED, "kind": "runtime_stopped",
                                  "severity": "critical", "target": _time(since, site),
                                  "value": None}, now)
        _queue(site, store, [("raised", entry)], now, faults=False)
        log.warning("BEMS's runtime has not polled since %s", since.isoformat())
    if entry is None:
        return {"sent": 0, "events": 0, "failed": 0}
    return deliver(site, store, now, refs={f"alarm:{entry['id']}"})


class Watch:
    """`watch` every minute on a thread of `bems web` (its own store connection)."""

    def __init__(self, site: Site, db, every_s: float = 60.0, clock=None):
        import threading

        self.site, self.db, self.every_s = site, db, every_s
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bems-watch", daemon=True)

    def start(self) -> "Watch":
        self.thread.start()
        return self

    def _run(self) -> None:
        from bems.status import stale_after
        from bems.storage import Store

        while not self.stopping.wait(self.every_s):
            try:
                with Store(self.db, self.site.timezone, migrate=False) as store:
                    watch(self.site, store, self.clock(), stale_after(store))
            except Exception:  # logged; the next minute tries again
                log.exception("watching the runtime failed")

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)


def _outage(site: Site, store, now: dt.datetime) -> dict | None:
    """The runtime's evaluation stopped for a while (BEMS down, the machine off): logged as
    an occurrence from the last evaluation to now, already cleared, and told as raised."""
    last = store.get(ALARMS_ALIVE_AT)
    if last is None or now.timestamp() - last < OUTAGE_S:
        return None
    since = dt.datetime.fromtimestamp(last, dt.timezone.utc)
    target = f"{_time(since, site)} – {_time(now, site)}"
    return store.log_closed_alarm({"key": f"runtime_down:{last}", "kind": "runtime_down",
                                   "severity": "critical", "target": target,
                                   "value": (now.timestamp() - last) / 60}, since, now)


def _new_faults(site: Site, store, nf: Notify, now: dt.datetime) -> list[dict]:
    """Faults found since the last look (the first look only starts the count: a store's
    backlog of faults is on the faults screen, not in people's mailboxes)."""
    from bems.faults.texts import fault_text

    after = store.get(NOTIFY_FAULTS_AFTER)
    if after is None:  # the first look: the count starts here
        store.put(NOTIFY_FAULTS_AFTER, store.last_fault_id())
        return []
    new = store.faults_after(after)
    if new:
        store.put(NOTIFY_FAULTS_AFTER, new[-1]["id"])
    rows: list[dict] = []
    for f in new:
        if f["status"] == "closed":
            continue
        vnd = f.get("vnd_per_day") or 0
        extra = {}
        for lang in ("en", "vi"):
            text = fault_text(f["rule"], f["evidence"], f["target"], lang)
            cost = _w("cost", lang).format(vnd=number(vnd, lang, 0)) if vnd > 0 else ""
            extra[lang] = " ".join(x for x in (text["title"] + ".", text["cause"], cost) if x)
        rows += _rows(site, nf, f"fault:{f['id']}", f"fault:{f['rule']}:{f['target']}",
                      "raised", "fault", SEVERITY["fault"], f["target"], None, f["detected"],
                      now, f"/faults/{f['id']}", extra)
    return rows


# --- delivery ---------------------------------------------------------------------------------

class DeliveryError(Exception):
    pass


@dataclass
class Outgoing:
    """One message to one recipient on one channel: one event, or a digest of several."""
    recipient: Recipient
    channel: str
    ids: list[int]
    bodies: list[dict]
    delivery_id: str

    def subject(self, site: Site) -> str:
        if len(self.bodies) == 1:
            return self.bodies[0]["subject"]
        return _w("digest", self.recipient.lang).format(n=len(self.bodies), site=site.name)

    def text(self, site: Site) -> str:
        lang = self.recipient.lang
        parts = [b["text"] for b in self.bodies]
        return "\n\n".join(parts) + "\n\n-- \n" + _w("footer", lang).format(site=site.name)


def deliver(site: Site, store, now: dt.datetime, limit: int = 500,
            refs: set[str] | None = None) -> dict[str, int]:
    """Send what is due (of the events `refs` only, if given). Returns counts: sent
    (messages), events, failed (messages)."""
    nf = site.notify
    counts = {"sent": 0, "events": 0, "failed": 0}
    if nf is None:
        return counts
    by_name = {r.name: r for r in nf.recipients}
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in store.due_notifications(now, limit):
        if refs is not None and row["ref"] not in refs:
            continue
        groups.setdefault((row["recipient"], row["channel"]), []).append(row)
    for (name, channel), rows in groups.items():
        r = by_name.get(name)
        ids = [x["id"] for x in rows]
        if r is None or channel not in _channels(r):  # the site file no longer names them
            store.notification_failed(ids, "no such recipient or channel in the site file",
                                      now + dt.timedelta(days=1))
            continue
        out = Outgoing(r, channel, ids, [x["body"] for x in rows],
                       f"{store_id(store)}.{ids[0]}-{ids[-1]}.{len(ids)}")
        try:
            send(site, out)
        except DeliveryError as err:
            attempts = max(x["attempts"] for x in rows)
            wait = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** min(attempts, 10))
            store.notification_failed(ids, str(err), now + dt.timedelta(seconds=wait))
            log.warning("notify: %s by %s failed (attempt %d, again in %d s): %s", name,
                        channel, attempts + 1, wait, err)
            counts["failed"] += 1
            continue
        store.mark_notified(ids, now)
        counts["sent"] += 1
        counts["events"] += len(ids)
    return counts


def store_id(store) -> str:
    """A short stable id of this store (message ids are unique across centres)."""
    return hashlib.sha256(str(store.path.resolve()).encode()).hexdigest()[:10]


def send(site: Site, out: Outgoing) -> None:
    if out.channel == "email":
        send_email(site.notify, out.recipient, out.subject(site), out.text(site),
                   f"<{out.delivery_id}@bems>")
    else:
        payload = {"site": site.name, "delivery": out.delivery_id, "lang": out.recipient.lang,
                   "subject": out.subject(site), "text": out.text(site), "events": out.bodies}
        post_webhook(out.recipient, payload, out.delivery_id, site.notify.timeout_s)


def send_email(nf: Notify, r: Recipient, subject: str, text: str, message_id: str) -> None:
    if not nf.smtp or not r.email:
        raise DeliveryError("no mail relay or address")
    u = urlsplit(nf.smtp)
    msg = EmailMessage(policy=MAIL_POLICY)
    try:
        msg["From"] = Address("BEMS", addr_spec=nf.sender)
        msg["To"] = Address(r.name, addr_spec=r.email)
        msg["Subject"] = subject.replace("\r", " ").replace("\n", " ")
    except (ValueError, IndexError) as err:  # the site file's checks make this unlikely
        raise DeliveryError(f"address: {err}") from err
    msg["Message-ID"] = message_id
    msg["Date"] = format_datetime(dt.datetime.now(dt.timezone.utc))
    msg.set_content(text)
    ctx = ssl.create_default_context()
    try:
        if u.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(u.hostname, u.port or 465,
                                                    timeout=nf.timeout_s, context=ctx)
        else:
            client = smtplib.SMTP(u.hostname, u.port or 25, timeout=nf.timeout_s)
        with client:
            if nf.starttls and u.scheme == "smtp":
                client.starttls(context=ctx)
            if nf.username:
                client.login(nf.username, nf.password() or "")
            refused = client.send_message(msg)
            if refused:
                raise DeliveryError(f"the relay refused {', '.join(refused)}")
    except smtplib.SMTPAuthenticationError as err:
        raise DeliveryError(f"the relay refused the user name or password ({err.smtp_code})"
                            ) from err
    except smtplib.SMTPResponseException as err:
        detail = err.smtp_error.decode("utf-8", "replace") if isinstance(err.smtp_error, bytes) \
            else str(err.smtp_error)
        raise DeliveryError(f"the relay answered {err.smtp_code} {detail[:200]}") from err
    except (smtplib.SMTPException, OSError) as err:
        raise DeliveryError(f"mail relay {u.hostname}:{u.port or 25}: "
                            f"{err.__class__.__name__} {str(err)[:200]}") from err


def post_webhook(r: Recipient, payload: dict, delivery_id: str, timeout_s: float) -> None:
    """POST the JSON; a 2xx answer is delivery. No redirect is followed, at most 64 KB of the
    answer is read, and the whole exchange is bounded by the timeout per socket operation."""
    if not r.webhook:
        raise DeliveryError("no webhook")
    body = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode()
    u = urlsplit(r.webhook)
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "BEMS",
               "X-BEMS-Delivery": delivery_id}
    secret = r.secret()
    if secret:
        sig = hmac.new(secret, body, hashlib.sha256).hexdigest()
        headers["X-BEMS-Signature"] = f"sha256={sig}"
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    conn_cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(u.hostname, u.port, timeout=timeout_s)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        answer = resp.read(MAX_RESPONSE)
        if not 200 <= resp.status < 300:
            raise DeliveryError(f"the webhook answered {resp.status} "
                                f"{answer[:200].decode('utf-8', 'replace')!r}")
    except (OSError, http.client.HTTPException) as err:
        raise DeliveryError(f"webhook {u.hostname}: {err.__class__.__name__} {str(err)[:200]}"
                            ) from err
    finally:
        conn.close()


def test_all(site: Site, now: dt.datetime) -> list[tuple[str, str, str | None]]:
    """Send a test message to every recipient on every channel, now, without the store:
    (recipient, channel, error or None)."""
    nf = site.notify
    out = []
    if nf is None:
        return out
    for r in nf.recipients:
        body = message(site, "test", "test", "info", site.name, None, now, r.lang,
                       _link(nf, "/alarms/"))
        for ch in _channels(r):
            try:
                send(site, Outgoing(r, ch, [0], [body], f"test.{int(now.timestamp())}"))
                out.append((r.name, ch, None))
            except DeliveryError as err:
                out.append((r.name, ch, str(err)))
    return out
