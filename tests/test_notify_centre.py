"""Alarms to people end to end: a controller of the virtual centre (real BACnet/IP over UDP on
loopback) goes offline, BEMS's runtime finds it stale and mails the technician through a real
SMTP relay (aiosmtpd); it comes back and the "resolved" message follows."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import pytest

from tests.conftest import require_energyplus

require_energyplus()

from bems.runtime import Runtime  # noqa: E402
from bems.site import Notify, Recipient  # noqa: E402
from devtools.clock import Clock  # noqa: E402
from devtools.ports import free_port  # noqa: E402
from devtools.receivers import Relay  # noqa: E402
from tests.bacnet_helpers import RunningCentre, quick_site  # noqa: E402

pytestmark = [pytest.mark.bacnet, pytest.mark.energyplus]
MONDAY_0800 = dt.datetime(2026, 7, 6, 8, 0)


def test_a_controller_offline_is_mailed_and_resolved_when_it_returns(site, tmp_path):
    relay = Relay().start()
    nf = Notify(recipients=(Recipient(name="Kỹ thuật trực", email="kythuat@trungtam.example.vn",
                                      lang="vi", min_severity="critical"),),
                smtp=f"smtp://127.0.0.1:{relay.port}", sender="bems@trungtam.example.vn")
    qsite = dataclasses.replace(quick_site(site), notify=nf)
    rc = RunningCentre(qsite, MONDAY_0800, speed=60)
    centre = rc.start()
    clock = Clock(MONDAY_0800.replace(tzinfo=qsite.tz))
    rt = Runtime(qsite, tmp_path / "c.sqlite", bacnet_port=free_port(), clock=clock)
    fc2 = qsite.device("fc2").name

    def minutes(n: int) -> None:
        for _ in range(n):
            clock.t += dt.timedelta(minutes=1)
            rt.poll()

    try:
        rt.bus.start()
        rt.poll()
        assert not [a for _, a in rt.alarms() if a["severity"] == "critical"]
        centre.apply_fault("fc2:offline")
        minutes(17)  # 15 minutes after its stale marker
        # (its zones' other alarms clear with their data: only the device's own is new)
        raised = [(e, a["key"]) for e, a in rt.alarms() if a["severity"] == "critical"]
        assert raised == [("raised", "stale:fc2")]
        assert rt.notify()["sent"] == 1
        mail = relay.wait_for(1)[0]
        assert mail["Subject"] == f"[Khẩn cấp] Không có dữ liệu từ {fc2}"
        assert mail["To"].addresses[0].addr_spec == "kythuat@trungtam.example.vn"
        centre.apply_fault("fc2:online")
        deadline = time.monotonic() + 60  # its back-off probe finds it; a loaded machine is slow
        while rt.last_poll is None or rt.last_poll.devices["fc2"].state != "ok":
            assert time.monotonic() < deadline, "fc2 never answered again"
            time.sleep(0.5)
            minutes(1)
        assert [(e, a["key"]) for e, a in rt.alarms() if a["severity"] == "critical"] == \
            [("cleared", "stale:fc2")]
        assert rt.notify()["sent"] == 1
        resolved = relay.wait_for(2)[1]
        assert resolved["Subject"] == f"[Khẩn cấp] Đã hết: Không có dữ liệu từ {fc2}"
        entry = rt.store.alarm_history(kind="stale")[0]
        assert entry["cleared"] is not None and entry["sent"] == 2
    finally:
        rt.stop()
        rc.stop()
        relay.stop()
