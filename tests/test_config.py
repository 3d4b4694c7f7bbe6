"""Site file parsing: the demo file, and broken files whose every error is reported."""

from __future__ import annotations

import datetime as dt

import pytest

from bems.config import ConfigError, parse_site

BROKEN = """\
[site]
name = "X"
timezone = "Asia/Hanoi_Typo"

[[devices]]
id = "d1"
address = "127.0.0.1:99999"
instance = 5

[[points]]
id = "p1"
device = "nodev"
object = "analog-value,1"
kind = "setpoint"
writable = true
min = 30
max = 20

[[points]]
id = "p1"
device = "d1"
object = "analog-input,1"
kind = "temprature"
writable = true

[[zones]]
id = "z1"
building = "B"
floor = "one"
area_m2 = 100
temperature = "p9"
colour = "red"

[[schedules]]
id = "s"
  [[schedules.seasons]]
  name = "all"
  periods = [
    { days = "mon-fri", start = "07:00", end = "12:00" },
    { days = "mon-fri", start = "11:00", end = "17:00" },
    { days = "fri-mon", start = "18:00", end = "17:00" },
  ]
"""


def test_demo_site_is_valid_and_complete(site):
    assert site.timezone == "Asia/Ho_Chi_Minh"
    assert site.summary()["zones"] == 15
    assert site.floor_area_m2 == pytest.approx(4982.0)
    ids = {p.id for p in site.points}
    for zone in site.zones:
        assert set(zone.points().values()) <= ids
    assert {m.measures for m in site.meters} == {"main", "ac", "lighting", "plugs"}
    assert all(m.parent == "main" for m in site.meters if m.measures != "main")
    ports = [d.port for d in site.devices]
    assert len(set(ports)) == len(ports), "each device needs its own UDP port on loopback"
    assert site.tariff_on(dt.date(2026, 1, 1)).price_vnd_per_kwh == 2226
    assert site.tariff_on(dt.date(2024, 1, 1)) is None


def test_every_error_is_reported_with_line_and_field():
    with pytest.raises(ConfigError) as info:
        parse_site(BROKEN, "broken.toml")
    found = {(i.line, i.field) for i in info.value.issues}
    expected = {
        (3, "site.timezone"),
        (7, "devices[0].address"),
        (12, "points[0].device"),
        (17, "points[0].max"),
        (20, "points[1].id"),  # duplicate id
        (23, "points[1].kind"),
        (24, "points[1].writable"),
        (28, "zones[0].building"),
        (29, "zones[0].floor"),
        (31, "zones[0].temperature"),
        (32, "zones[0].colour"),
        (40, "schedules[0].seasons[0].periods[1]"),  # overlaps the first period
        (41, "schedules[0].seasons[0].periods[2].days"),
        (41, "schedules[0].seasons[0].periods[2].end"),
    }
    assert expected <= found, sorted(found)
    assert all(i.file == "broken.toml" for i in info.value.issues)
    text = str(info.value)
    assert "broken.toml:29: zones[0].floor: must be a whole number" in text


def test_toml_syntax_error_names_the_line():
    with pytest.raises(ConfigError) as info:
        parse_site('[site]\nname = "x"\nlatitude = = 3\n', "s.toml")
    assert info.value.issues[0].line == 3


def test_missing_required_fields_and_unknown_tables():
    text = '[site]\nname="x"\n[wat]\n[[buildings]]\nname = "no id"\n'
    with pytest.raises(ConfigError) as info:
        parse_site(text, "s.toml")
    fields = {(i.line, i.field, i.message.split(" (")[0]) for i in info.value.issues}
    assert (3, "wat", "unknown field") in fields
    assert (4, "buildings[0].id", "required field is missing") in fields
    assert (4, "buildings[0].floor_area_m2", "required field is missing") in fields


def test_seasons_wrap_the_new_year_and_calendar_ranges_expand(site):
    office = site.schedule("office")
    assert office.season_for(dt.date(2026, 1, 5)).name == "winter"
    assert office.season_for(dt.date(2026, 7, 5)).name == "summer"
    closure_days = [d for d, _ in site.calendar.closures]
    assert closure_days == [dt.date(2027, 2, 11), dt.date(2027, 2, 12)]
    assert site.calendar.workdays == ()  # the government's make-up days come from the package
    from bems.calendar import SiteCalendar

    cal = SiteCalendar(site)  # 31/8/2026 off, paid for by Saturday 22/8
    assert cal.day_kind(dt.date(2026, 8, 22))[0] == "makeup"
    assert cal.day_kind(dt.date(2026, 8, 31))[0] == "holiday"
    assert cal.day_kind(dt.date(2025, 4, 26))[0] == "makeup"  # for 2 May 2025


def test_tou_tariff_parses_bands():
    text = """
[site]
name = "t"
[[tariffs]]
name = "tou"
valid_from = 2025-05-10
kind = "tou"
vat = 0.08
prices = { peak = 5422, normal = 3152, offpeak = 1918 }
periods = [
  { band = "peak", days = "mon-sat", start = "09:30", end = "11:30" },
  { band = "offpeak", days = "mon-sun", start = "22:00", end = "24:00" },
]
"""
    site = parse_site(text)
    t = site.tariffs[0]
    assert dict(t.prices) == {"peak": 5422, "normal": 3152, "offpeak": 1918}
    assert t.periods[1].end == dt.time(0, 0)
    assert t.periods[0].days == (0, 1, 2, 3, 4, 5)


def test_lighting_outputs_and_points_without_a_priority_array():
    from bems.config import demo_site_path

    text = open(demo_site_path(), encoding="utf-8").read() + """
[[points]]
id = "f1.dali"
device = "fc1"
object = "lighting-output, 07"
kind = "dimming"
writable = true
min = 0
max = 100

[[points]]
id = "f1.gw.sp"
device = "fc1"
object = "analog-value,90"
kind = "setpoint"
writable = true
commandable = false
"""
    site = parse_site(text, "x.toml")
    assert site.point("f1.dali").object == "lighting-output,7"
    assert not site.point("f1.gw.sp").commandable and site.point("f1.dali").commandable
    with pytest.raises(ConfigError):
        parse_site(text.replace('kind = "setpoint"\nwritable = true\ncommandable = false',
                                'kind = "setpoint"\ncommandable = false'), "x.toml")


def test_the_bacnet_table():
    from bems.config import demo_site_path

    base = open(demo_site_path(), encoding="utf-8").read()
    site = parse_site(base + '\n[bacnet]\ninterface = "192.168.10.5/24"\nport = 47809\n'
                             'instance = 599001\nbbmd = "192.168.20.1:47808"\nbbmd_ttl = 600\n',
                      "x.toml")
    assert (site.bacnet.interface, site.bacnet.port, site.bacnet.bbmd) == \
        ("192.168.10.5/24", 47809, "192.168.20.1:47808")
    assert parse_site(base, "x.toml").bacnet.interface == "127.0.0.1/8"  # the demo's loopback
    for bad in ('interface = "999.1.1.1/24"', 'interface = "10.0.0.1/40"', 'port = 0',
                'bbmd = "not an address"', 'bbmd_ttl = 5', 'colour = "red"'):
        with pytest.raises(ConfigError):
            parse_site(base + "\n[bacnet]\n" + bad + "\n", "x.toml")


def test_discovery_lists_object_types_the_client_cannot_decode_without_reading_them():
    from connectors.bacnet.discovery import known_type, site_section

    assert known_type("analog-value") and known_type("lighting-output")
    assert not known_type("128") and not known_type("color") and not known_type("x")
    draft = site_section([{"address": "127.0.0.1:47808", "instance": 5, "name": "gw",
                           "objects": [{"object": "128,1", "name": "", "warning": "unknown"},
                                       {"object": "analog-value,1", "name": "sp"}]}])
    assert "# 128,1" in draft and 'object = "analog-value,1"' in draft


def test_device_addresses_in_the_notation_other_tools_use():
    from bems.site import canonical_device_address as c, routed_parts

    assert c("2001:005") == "2001:5" and routed_parts("2001:5") == (2001, "5")
    assert c("2001:0X0A0b") == "2001:0x0a0b"
    assert c("2001:10.0.0.5") == "2001:10.0.0.5:47808"
    assert routed_parts("2001:10.0.0.5:47808") == (2001, "10.0.0.5:47808")
    assert c("localhost") == "127.0.0.1:47808" and routed_parts("127.0.0.1:47808") is None
    for bad in ("0:5", "65535:5", "2001:256", "2001:abc", "2001:", "2001:0x1", ":5",
                "2001:1.2.3:5", "2001:" + "0a" * 9, "9" * 40 + ":1", "2001:nan", "2001:-1"):
        assert c(bad) is None, bad
    with pytest.raises(ConfigError, match="already used by device 'a'"):
        parse_site('[site]\nname = "x"\n[[devices]]\nid = "a"\naddress = "2001:5"\n'
                   'instance = 1\n[[devices]]\nid = "b"\naddress = "2001:005"\n'
                   'instance = 2\n', "x.toml")
    with pytest.raises(ConfigError, match="NETWORK:MAC"):
        parse_site('[site]\nname = "x"\n[[devices]]\nid = "a"\naddress = "2001:x"\n'
                   'instance = 1\n', "x.toml")
    # a decimal MAC wider than a byte: said so, with the hex spelling
    with pytest.raises(ConfigError, match=r"one byte \(0-255.*2709:0x0a96"):
        parse_site('[site]\nname = "x"\n[[devices]]\nid = "a"\naddress = "2709:2710"\n'
                   'instance = 1\n', "x.toml")
    # a host without its port (the property test met "x" with an empty message)
    for host in ("x", "10.0.0.5", " localhost "):
        with pytest.raises(ConfigError) as e:
            parse_site('[site]\nname = "x"\n[[devices]]\nid = "a"\naddress = "' + host +
                       '"\ninstance = 1\n', "x.toml")
        assert f"{host.strip()}:47808" in str(e.value) and "HOST:PORT" in str(e.value), e.value


def test_proprietary_objects_are_points_to_read_never_to_write():
    base = ('[site]\nname = "x"\n[[devices]]\nid = "d"\naddress = "127.0.0.1:47808"\n'
            'instance = 1\n[[points]]\nid = "m"\ndevice = "d"\nobject = "0513, 1"\n'
            'kind = "power"\n')
    assert parse_site(base, "x.toml").point("m").object == "513,1"
    with pytest.raises(ConfigError, match="read-only"):
        parse_site(base + "writable = true\n", "x.toml")
    for bad in ("12,1", "1024,1", "99999,1"):  # standard types have names; 10 bits at most
        with pytest.raises(ConfigError):
            parse_site(base.replace("0513, 1", bad), "x.toml")


def test_the_draft_site_file_is_valid_toml_whatever_devices_call_their_objects():
    import tomllib

    from connectors.bacnet.discovery import guess_kind, site_section

    hostile = 'Zone "A"\n[[points]]\nid = "evil"\\' + "é" * 500
    draft = site_section([{"address": "2001:5", "instance": 5, "name": hostile,
                           "objects": [{"object": "analog-input,1", "name": hostile,
                                        "units": "degrees-celsius"},
                                       {"object": "analog-value,2", "name": "Nhiệt độ đặt P1",
                                        "units": "degrees-celsius", "commandable": False},
                                       {"object": "513,1", "name": "x", "warning": "unknown"}]}])
    doc = tomllib.loads(draft)
    assert [p["id"] for p in doc["points"]] == ["dev5.analog-input.1", "dev5.analog-value.2"]
    # `bems check-config` takes the draft as written: [site] and [bacnet] are there
    site = parse_site(draft, "draft.toml")
    assert (site.bacnet.interface, site.bacnet.port) == ("127.0.0.1/8", 47808)
    assert parse_site(site_section([], {"interface": "eth0", "port": 47809,
                                        "bbmd": "10.0.0.1:47808"}), "d.toml").bacnet.bbmd
    assert doc["devices"][0]["address"] == "2001:5"
    assert doc["points"][0]["name"] == hostile[:200]
    assert "writable" not in doc["points"][1]  # commented out: a person opts in
    assert "# commandable = false" in draft
    assert guess_kind("analog-value", "Nhiệt độ đặt P1") == "setpoint"
    assert guess_kind("analog-input", "Nhiệt độ phòng 101") == "temperature"
    assert guess_kind("analog-input", "OAT") == "outdoor_temperature"
    assert guess_kind("binary-value", "Temp alarm") == "status"  # a temperature is analog
    assert guess_kind("analog-input", "Main", "kilowatt-hours") == "energy"
    assert guess_kind("lighting-output", "Office lights") == "dimming"
    assert guess_kind("binary-input", "PIR hall") == "occupancy"
