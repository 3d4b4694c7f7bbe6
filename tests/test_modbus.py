"""Modbus TCP: the register codec and request coalescing (fast, no socket), then our client
over real TCP against pymodbus's own server and against a hostile one that answers wrongly on
purpose (wrong transaction id or unit, exception codes, short and over-long frames, late
answers, reset connections, NaN)."""

from __future__ import annotations

import asyncio
import json
import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.modbus.codec import (MapError, TYPES, check_map, coalesce, decode, encode,
                                     modbus_address, register, split)

# --- the codec (fast tier) ----------------------------------------------------------------


def test_modicon_addresses_are_converted_and_must_match_the_table():
    assert modbus_address(40001, "holding") == 0
    assert modbus_address("400100", "holding") == 99
    assert modbus_address(30011, "input") == 10
    assert modbus_address(7, "holding") == 7  # 0-based as on the wire
    with pytest.raises(MapError, match="holding address .* but the table is input"):
        modbus_address(40001, "input")
    for bad in (70000, -1, "x", 1.5, True, "٤٠٠٠١", "４０００１", "", "4" * 5000, "1e3"):
        with pytest.raises(MapError):
            modbus_address(bad, "holding")


def test_a_map_that_overlaps_or_runs_past_65535_is_refused():
    with pytest.raises(MapError, match="runs past address 65535"):
        register("e", "holding", 65535, "float32")
    with pytest.raises(MapError, match="one bit"):
        register("c", "coil", 0, "float32")
    with pytest.raises(MapError, match="unit must be one of"):
        register("p", "holding", 0, unit="furlongs")
    for bad in (math.nan, math.inf, 0.0):
        with pytest.raises(MapError, match="scale"):
            register("p", "holding", 0, scale=bad)
    a, b = register("a", "holding", 10, "float32"), register("b", "holding", 11, "uint16")
    assert check_map([a, b]) == ["b overlaps a at holding 11"]
    assert check_map([a, register("b", "input", 11)]) == []


@pytest.mark.parametrize("kind", sorted(set(TYPES) - {"bool"}))
@pytest.mark.parametrize("words,bytes_", [("big", "big"), ("little", "big"), ("big", "little"),
                                          ("little", "little")])
def test_every_type_and_order_round_trips(kind, words, bytes_):
    reg = register("p", "holding", 0, kind, words, bytes_)
    for v in (0, 1, 123, -45 if kind.startswith(("int", "float")) else 45, 32767):
        assert decode(reg, encode(reg, v)) == pytest.approx(v, rel=1e-6)


def test_word_and_byte_orders_are_the_ones_meters_use():
    # 123456.0 as float32 is 0x47F12000: big/big "47F1 2000"; word-swapped "2000 47F1"
    raw = [0x47F1, 0x2000]
    assert decode(register("a", type="float32"), raw) == 123456.0
    assert decode(register("a", type="float32", word_order="little"), raw[::-1]) == 123456.0
    assert decode(register("a", type="float32", byte_order="little"),
                  [0xF147, 0x0020]) == 123456.0
    assert decode(register("a", type="int16"), [0xFFFF]) == -1
    assert decode(register("a", type="uint32"), [1, 0]) == 65536


def test_scale_offset_and_units_give_bems_units():
    assert decode(register("p", type="uint32", unit="W"), [0, 12500]) == 12.5  # kW
    assert decode(register("e", type="uint32", unit="Wh", scale=10), [0, 100]) == 1.0  # kWh
    assert decode(register("t", type="int16", scale=0.1, offset=-40), [650]) == pytest.approx(25)
    assert register("p", unit="W").si_unit == "kW"


def test_nan_and_infinity_in_a_float_register_are_no_value():
    for bits in (0x7FC00000, 0x7F800000, 0xFF800000):
        assert decode(register("a", type="float32"), [bits >> 16, bits & 0xFFFF]) is None
    with pytest.raises(MapError, match="does not fit"):
        encode(register("a", type="int16"), 40000)
    with pytest.raises(MapError, match="not a finite"):
        encode(register("a", type="float32"), math.nan)


def test_neighbours_share_a_request_within_the_protocol_limits():
    regs = [register(f"r{i}", "holding", 2 * i, "float32") for i in range(100)]  # 200 regs
    regs += [register("gap", "holding", 300), register("in", "input", 0)]
    regs += [register(f"c{i}", "coil", i, "bool") for i in range(2500)]
    blocks = coalesce(regs)
    holding = [b for b in blocks if b.table == "holding"]
    assert [(b.start, b.count) for b in holding] == [(0, 124), (124, 76), (300, 1)]
    assert all(b.count <= 125 for b in holding)
    assert [(b.start, b.count) for b in blocks if b.table == "coil"] == [(0, 2000), (2000, 500)]
    assert sum(len(b.members) for b in blocks) == len(regs)
    # a float never straddles two requests; a small gap is read through only when allowed
    assert all(r.address + r.width <= b.start + b.count for b in blocks for r in b.members)
    gap = [register("a", "holding", 0), register("b", "holding", 3)]
    assert len(coalesce(gap)) == 2 and len(coalesce(gap, max_gap=2)) == 1


@given(st.lists(st.integers(0, 65535), min_size=4, max_size=4),
       st.sampled_from(sorted(TYPES)), st.sampled_from(["big", "little"]),
       st.sampled_from(["big", "little"]))
def test_any_registers_decode_to_a_number_or_none_never_an_error(words, kind, wo, bo):
    reg = register("x", "holding", 0, kind, wo, bo)
    v = decode(reg, words[:reg.width])
    assert v is None or math.isfinite(v)


@given(st.lists(st.tuples(st.sampled_from(sorted(TYPES)), st.sampled_from(["big", "little"]),
                          st.sampled_from(["big", "little"]), st.integers(0, 3)),
                min_size=1, max_size=12),
       st.lists(st.integers(0, 65535), min_size=90, max_size=90))
def test_a_block_splits_into_what_each_point_decodes_to_alone(points, words):
    """`split` unpacks a whole request at once: every member's value is the one its own
    registers decode to (every type, both orders, gaps between members)."""
    regs, address = [], 0
    for i, (kind, wo, bo, gap) in enumerate(points):
        address += gap
        regs.append(register(f"p{i}", "holding", address, kind, wo, bo, scale=0.5, unit="W"))
        address += regs[-1].width
    (block,) = coalesce(regs, max_gap=3)
    got = split(block, words[:block.count])
    for r in regs:
        i = r.address - block.start
        alone = decode(r, words[i:i + r.width])
        assert got[r.id] == alone or (got[r.id] is None and alone is None), r


# --- over real TCP (integration tier) -----------------------------------------------------

integration = pytest.mark.integration


def _run(coro):
    return asyncio.run(coro)


@integration
def test_a_real_device_slower_than_its_timeout_gives_no_values():
    """pymodbus's server answering after its turnaround (as bench/modbus.py's devices do):
    within the timeout every point reads; beyond it none does, and none keeps an old value."""
    from connectors.modbus.client import ModbusDevice, ModbusReader
    from devtools.modbus import ModbusServer

    regs = (register("a", "holding", 0), register("b", "input", 4, "float32"))
    with ModbusServer({1: {"holding": {0: 7}, "input": dict(zip((4, 5), encode(regs[1], 2.5)))}},
                      turnaround_s=0.3) as srv:
        patient = ModbusDevice("m", "127.0.0.1", srv.port, 1, 2.0, 0, regs)
        hasty = ModbusDevice("m", "127.0.0.1", srv.port, 1, 0.1, 0, regs)

        async def both():
            ok = ModbusReader([patient])
            late = ModbusReader([hasty])
            try:
                return (await ok.cycle())[0], (await late.cycle())[0]
            finally:
                ok.close()
                late.close()

        good, bad = _run(both())
    assert good.values == {"a": 7.0, "b": 2.5} and not good.bad
    assert bad.values == {"a": None, "b": None} and set(bad.bad) == {"a", "b"}


@integration
def test_reads_writes_and_scans_against_pymodbus_server():
    from connectors.modbus.client import ModbusDevice, read_device, scan, write_point
    from devtools.modbus import ModbusServer

    p = register("p", "holding", 40001, "float32", unit="W")
    e = register("e", "input", 30011, "uint32", word_order="little", unit="Wh")
    c = register("c", "coil", 0, "bool")
    hr = dict(enumerate(encode(p, 12.5)))
    ir = {10 + i: w for i, w in enumerate(encode(e, 123456.789))}
    with ModbusServer({1: {"holding": hr, "input": ir, "coil": {0: 1}}, 3: {}}) as srv:
        dev = ModbusDevice("m1", "127.0.0.1", srv.port, 1, registers=(p, e, c))
        r = _run(read_device(dev))
        assert r.values == {"p": 12.5, "e": pytest.approx(123456.789), "c": 1.0} and not r.bad
        assert r.requests == 3
        assert _run(write_point(dev, p, 3.25)) == 3.25
        assert _run(read_device(dev)).values["p"] == 3.25
        assert _run(scan("127.0.0.1", srv.port, range(1, 5), 0.3)) == [1, 3]
        missing = _run(read_device(ModbusDevice("m9", "127.0.0.1", srv.port, 9, 0.3,
                                                registers=(p,))))
        assert missing.values == {"p": None} and "exception 4" in missing.bad["p"]


class Hostile:
    """A Modbus TCP server that answers a holding-register read the way `mode` says."""

    def __init__(self, mode: str):
        self.mode = mode

    async def handle(self, reader, writer) -> None:
        try:
            while True:
                head = await reader.readexactly(7)
                tid, _pid, length, unit = struct.unpack(">HHHB", head)
                pdu = await reader.readexactly(length - 1)
                fc, addr, count = struct.unpack(">BHH", pdu[:5])
                words = [0x4148, 0x0000] * (count // 2) + [0] * (count % 2)  # 12.5 as float32
                body = struct.pack(">BB", fc, 2 * count) + b"".join(
                    struct.pack(">H", w) for w in words)
                if self.mode == "wrong_tid":
                    tid ^= 0x5555
                elif self.mode == "wrong_unit":
                    unit = (unit % 200) + 7
                elif self.mode == "exception":
                    body = struct.pack(">BB", fc | 0x80, 2)
                elif self.mode == "short":
                    body = struct.pack(">BB", fc, 2 * count) + b"\x41"  # cut off
                elif self.mode == "long":
                    body = struct.pack(">BB", fc, 2 * count + 40) + b"\x00" * (2 * count + 40)
                elif self.mode == "late":
                    await asyncio.sleep(1.5)
                elif self.mode == "reset":
                    writer.transport.abort()
                    return
                elif self.mode == "nan":
                    body = struct.pack(">BB", fc, 2 * count) + b"\x7f\xc0\x00\x00" * (count // 2)
                writer.write(struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@integration
@pytest.mark.parametrize("mode", ["wrong_tid", "wrong_unit", "exception", "short", "long",
                                  "late", "reset", "nan"])
def test_a_hostile_device_gives_bad_points_never_a_crash_or_an_old_value(mode):
    from connectors.modbus.client import ModbusDevice, ModbusReader

    async def body():
        server = await asyncio.start_server(Hostile(mode).handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        good = await asyncio.start_server(Hostile("ok").handle, "127.0.0.1", 0)
        regs = (register("p", "holding", 0, "float32"), register("q", "holding", 2, "float32"))
        devs = [ModbusDevice("bad", "127.0.0.1", port, 1, 0.5, 0, regs),
                ModbusDevice("ok", "127.0.0.1", good.sockets[0].getsockname()[1], 1, 0.5, 0,
                             regs)]
        reader = ModbusReader(devs)
        try:
            cycles = [await reader.cycle() for _ in range(2)]
        finally:
            reader.close()
            server.close()
            good.close()
        return cycles

    for bad, ok in _run(body()):
        assert ok.values == {"p": 12.5, "q": 12.5}, (mode, ok)  # its neighbour is unharmed
        assert bad.values == {"p": None, "q": None}, (mode, bad)
        assert set(bad.bad) == {"p", "q"} and all(bad.bad.values())
        assert len(bad.error + " ".join(bad.bad.values())) < 700


@integration
def test_cli_reads_scans_and_prints_json_last(runner):
    from bems.cli import main
    from devtools.modbus import ModbusServer

    p = register("p", "holding", 0, "float32")
    with ModbusServer({2: {"holding": {**dict(enumerate(encode(p, 21.5))), 5: 7}}}) as srv:
        addr = f"127.0.0.1:{srv.port}"
        r = runner.invoke(main, ["modbus", "read", addr, "--unit", "2", "--table", "holding",
                                 "--address", "40001", "--type", "float32", "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.output.strip().splitlines()[-1]) == {"values": [21.5]}
        r = runner.invoke(main, ["modbus", "read", addr, "--unit", "2", "--address", "5",
                                 "--count", "3"])
        assert r.exit_code == 0 and "7" in r.output, r.output
        r = runner.invoke(main, ["modbus", "scan", addr, "--units", "1-4", "--timeout", "0.3"])
        assert r.exit_code == 0 and "2" in r.output, r.output
        for bad, why in ((["--address", "70000"], "past 65535"),
                         (["--address", "٤٠٠٠١"], "whole number"),
                         (["--type", "float128"], "float128"),
                         (["--unit", "0"], "not in 1..247"),
                         (["--unit", "nan"], "unit")):
            r = runner.invoke(main, ["modbus", "read", addr, *bad])
            assert r.exit_code != 0 and why in r.output and "Traceback" not in r.output, r.output
    r = runner.invoke(main, ["modbus", "read", "127.0.0.1:1", "--timeout", "0.3"])
    assert r.exit_code == 1 and "no connection" in r.output, r.output
    for bad in ("127.0.0.1:٥٠٢", "127.0.0.1:99999", "127.0.0.1:", "x" * 5000):
        r = runner.invoke(main, ["modbus", "read", bad, "--timeout", "0.3"])
        assert r.exit_code == 1 and "HOST:PORT" in r.output and len(r.output) < 300, r.output
    r = runner.invoke(main, ["modbus", "scan", "127.0.0.1:1", "--units", "١-٣"])
    assert r.exit_code == 2 and "range" in r.output, r.output


MIXED = """
[site]
name = "Mixed"
timezone = "Asia/Ho_Chi_Minh"

[[devices]]
id = "fc1"
address = "127.0.0.1:{bacnet}"
instance = 1001
timeout_s = 0.5
retries = 0

[[devices]]
id = "pm1"
protocol = "modbus"
address = "127.0.0.1:{modbus}"
unit = 3
timeout_s = 1

[[devices]]
id = "pm2"
protocol = "modbus"
address = "127.0.0.1:{modbus}"
unit = 4
timeout_s = 1

[[points]]
id = "fc1.temp"
device = "fc1"
object = "analog-input,1"
kind = "temperature"

[[points]]
id = "pm1.kw"
device = "pm1"
object = "holding,40001"
type = "float32"
word_order = "little"
unit = "W"
kind = "power"

[[points]]
id = "pm1.kwh"
device = "pm1"
object = "input,30011"
type = "uint32"
unit = "Wh"
kind = "energy"

[[points]]
id = "pm2.limit"
device = "pm2"
object = "holding,10"
type = "int16"
scale = 0.1
unit = "kW"
kind = "power"
writable = true
min = 0
max = 500
"""


@integration
def test_a_mixed_site_polls_both_protocols_and_writes_modbus_through_the_writer(tmp_path):
    """BACnet controllers and Modbus meters on one bus: the runtime stores the meters' readings
    (in kW and kWh), a BACnet device that does not answer is stale without touching them, and
    a Modbus register written through the one Writer is read back, in the ledger, and
    restored at release (Modbus has no priority array)."""
    from bems.config import parse_site
    from bems.control import Writer
    from bems.intents import WriteIntent
    from bems.runtime import Runtime
    from connectors.buses import MixedBus, field_bus
    from devtools.modbus import ModbusServer
    from devtools.ports import free_port

    kw = register("k", "holding", 0, "float32", word_order="little", unit="W")
    kwh = register("e", "input", 10, "uint32", unit="Wh")
    lim = register("l", "holding", 10, "int16", scale=0.1, unit="kW")
    units = {3: {"holding": dict(enumerate(encode(kw, 42.5))),
                 "input": {10 + i: w for i, w in enumerate(encode(kwh, 1234.5))}},
             4: {"holding": {10 + i: w for i, w in enumerate(encode(lim, 120.0))}}}
    with ModbusServer(units) as srv:
        site = parse_site(MIXED.format(bacnet=free_port(), modbus=srv.port), "mixed.toml")
        bus = field_bus(site, bacnet_port=free_port())
        assert isinstance(bus, MixedBus)
        rt = Runtime(site, tmp_path / "m.sqlite", bus=bus, poll_interval_s=3600)
        bus.start()
        try:
            rt.poll()
            got = {p: v for p, v in rt.last_values.items()}
            assert got["pm1.kw"] == pytest.approx(42.5)
            assert got["pm1.kwh"] == pytest.approx(1234.5)
            assert got["pm2.limit"] == pytest.approx(120.0) and got.get("fc1.temp") is None
            stored = rt.store.latest(["pm1.kw", "fc1.temp"])
            assert stored["pm1.kw"][1:] == (pytest.approx(42.5), "good"), stored
            assert stored["fc1.temp"][1:] == (None, "stale"), stored
            writer = Writer(site, bus, rt.store)
            r = writer.apply(WriteIntent("pm2.limit", 80.0, "peak limit", "cli"))
            assert r.outcome == "done", r
            assert bus.read(site.device("pm2").address, "holding,10") == pytest.approx(80.0)
            assert writer.release("pm2.limit", "cli", "done").outcome == "restored"
            assert bus.read(site.device("pm2").address, "holding,10") == pytest.approx(120.0)
            refused = writer.apply(WriteIntent("pm1.kwh", 1.0, "x", "cli"))
            assert refused.outcome == "rejected"  # an input register is read-only
        finally:
            rt.store.close()
            bus.stop()


@integration
def test_cli_writes_through_the_writer_and_release_restores(runner, tmp_path):
    from bems.cli import main
    from bems.storage import Store
    from devtools.modbus import ModbusServer

    with ModbusServer({4: {"holding": {10: 120}}}) as srv:
        addr, db = f"127.0.0.1:{srv.port}", str(tmp_path / "l.sqlite")
        where = ["--unit", "4", "--address", "40011", "--type", "int16", "--db", db]

        def now() -> float:
            r = runner.invoke(main, ["modbus", "read", addr, *where[:-2], "--json"])
            return json.loads(r.output.strip().splitlines()[-1])["values"][0]

        r = runner.invoke(main, ["modbus", "write", addr, "80", *where, "--reason", "test"])
        assert r.exit_code == 0 and "done 80" in r.output and "directly" in r.output, r.output
        assert now() == 80
        rows = Store(db).writes(limit=5)
        assert rows[0].source == "cli" and rows[0].previous == "120.0" and rows[0].reason == "test"
        r = runner.invoke(main, ["modbus", "release", addr, *where])
        assert r.exit_code == 0 and "restored" in r.output, r.output
        assert now() == 120
        r = runner.invoke(main, ["modbus", "write", addr, "1", "--table", "input", "--db", db])
        assert r.exit_code == 2 and "read-only" in r.output, r.output
        r = runner.invoke(main, ["modbus", "write", addr, "nan", *where])
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        assert now() == 120


@integration
def test_the_virtual_meter_serves_again_at_once_on_the_same_port(tmp_path):
    """A virtual centre stopped while BEMS is still connected leaves the server's side of the
    connection in TIME_WAIT; the next centre on the same port starts at once (a CI run met
    "TCP … already in use" there)."""
    from bems.config import parse_site
    from connectors.modbus.client import ModbusReader
    from connectors.modbus.fieldbus import ModbusFieldBus
    from connectors.simulator.modbus import VirtualModbus
    from devtools.ports import free_port

    site = parse_site(MIXED.format(bacnet=free_port(), modbus=free_port()), "m.toml")
    devices = list(ModbusFieldBus(site).devices.values())

    async def body() -> list:
        seen = []
        for _ in range(2):
            vm = VirtualModbus(site)
            await vm.start()
            vm.publish({"pm1.kw": 42.5})
            reader = ModbusReader(devices)
            seen.append((await reader.cycle())[0].values["pm1.kw"])
            vm.close()  # the server closes first, the client's connection still open
            await asyncio.sleep(0.2)
            reader.close()
        return seen

    assert _run(body()) == [42.5, 42.5]


# --- meter templates ----------------------------------------------------------------------

def test_the_shipped_templates_are_the_makers_maps():
    """Spot checks against the register numbers the makers' documents print (one more than
    the wire address): a template edited by mistake reads the wrong register on every site."""
    from bems.registers import meter_templates

    t = meter_templates()
    assert set(t) >= {"eastron-sdm630", "eastron-sdm120", "schneider-pm5000",
                      "schneider-iem3000"}

    def reg(name, key):
        return next(p.register for p in t[name].points if p.key == key)
    # Eastron: 30053 total system power (W), 30073 import kWh, input registers, float32
    p = reg("eastron-sdm630", "power")
    assert (p.table, p.address, p.type, p.word_order, p.unit) == \
        ("input", 52, "float32", "big", "W")
    assert (reg("eastron-sdm630", "energy").address, reg("eastron-sdm630", "energy").unit) == \
        (72, "kWh")
    assert reg("eastron-sdm120", "power").address == 12  # 30013
    # Schneider: 3060 total active power (kW, float32), 3204 energy delivered (INT64, Wh)
    for name in ("schneider-pm5000", "schneider-iem3000"):
        p, e = reg(name, "power"), reg(name, "energy")
        assert (p.table, p.address, p.type, p.unit) == ("holding", 3059, "float32", "kW")
        assert (e.table, e.address, e.type, e.unit) == ("holding", 3203, "int64", "Wh")
    for tpl in t.values():
        assert tpl.source and tpl.title
        assert [p.kind for p in tpl.points].count("power") == 1
        assert all(p.vi and p.en for p in tpl.points)


TEMPLATED = """
[site]
name = "T"

[[devices]]
id = "tu-t2"
name = "Tủ điện tầng 2"
protocol = "modbus"
address = "127.0.0.1:{port}"
unit = 2
{extra}

[[points]]
id = "tu-t2.limit"
device = "tu-t2"
object = "holding,10"
kind = "other"
"""


def test_a_device_that_names_a_template_gets_its_points():
    from bems.config import ConfigError, parse_site

    site = parse_site(TEMPLATED.format(port=502, extra='template = "eastron-sdm630"'), "t.toml")
    pts = {p.id: p for p in site.points_of("tu-t2")}
    assert len(pts) == 11 and "tu-t2.limit" in pts
    assert pts["tu-t2.power"].unit == "kW" and pts["tu-t2.power"].kind == "power"
    assert pts["tu-t2.power"].name == "Tủ điện tầng 2 - Công suất tác dụng tổng"
    assert pts["tu-t2.energy"].modbus().unit == "kWh" and not pts["tu-t2.power"].writable
    site = parse_site(TEMPLATED.format(port=502, extra='template = "schneider-pm5000"\n'
                                       'template_points = ["power", "energy"]'), "t.toml")
    assert {p.id for p in site.points_of("tu-t2")} == {"tu-t2.power", "tu-t2.energy",
                                                       "tu-t2.limit"}
    for extra, words in (
            ('template = "gelex-xyz"', ["no meter template 'gelex-xyz'", "eastron-sdm630"]),
            ('template = "eastron-sdm120"\ntemplate_points = ["kw"]', ["no point 'kw'"]),
            ('template = "eastron-sdm120"\ntemplate_points = []', ["a list of the template"]),
            ('template = "eastron-sdm120"\ntemplate_points = "power"', ["must be"])):
        with pytest.raises(ConfigError) as e:
            parse_site(TEMPLATED.format(port=502, extra=extra), "t.toml")
        assert all(w in str(e.value) for w in words), str(e.value)
    # a point of the site file on the template's registers, or with a template point's id
    with pytest.raises(ConfigError) as e:
        parse_site(TEMPLATED.format(port=502, extra='template = "schneider-pm5000"').replace(
            'object = "holding,10"', 'object = "holding,3060"'), "t.toml")
    assert "3060" in str(e.value) or "3059" in str(e.value), str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_site(TEMPLATED.format(port=502, extra='template = "eastron-sdm120"').replace(
            'id = "tu-t2.limit"', 'id = "tu-t2.power"'), "t.toml")
    assert "duplicate id 'tu-t2.power'" in str(e.value), str(e.value)
    bacnet = TEMPLATED.format(port=502, extra="").replace('protocol = "modbus"\n', "").replace(
        "unit = 2", 'instance = 5\ntemplate = "eastron-sdm120"')
    with pytest.raises(ConfigError) as e:
        parse_site(bacnet, "t.toml")
    assert "template is for Modbus devices" in str(e.value), str(e.value)


def test_cli_lists_templates_and_their_sources(runner):
    from bems.cli import main

    r = runner.invoke(main, ["modbus", "templates"])
    assert r.exit_code == 0 and "eastron-sdm630" in r.output and "source:" in r.output
    r = runner.invoke(main, ["modbus", "templates", "eastron-sdm120"])
    assert r.exit_code == 0 and "power" in r.output and "(register 13)" in r.output, r.output
    r = runner.invoke(main, ["modbus", "templates", "gelex"])
    assert r.exit_code == 2 and "known: eastron-sdm120" in r.output, r.output


@integration
def test_a_templated_meter_reads_in_kw_and_kwh_over_tcp(runner):
    """A Schneider-mapped meter served by pymodbus (kW float32, Wh int64 on the maker's
    registers) read through the field bus and by `bems modbus read --template`: BEMS's kW
    and kWh."""
    from bems.cli import main
    from bems.config import parse_site
    from connectors.modbus.fieldbus import ModbusFieldBus
    from devtools.modbus import ModbusServer

    power = register("p", "holding", 3059, "float32", unit="kW")
    energy = register("e", "holding", 3203, "int64", unit="Wh")
    image = {3059 + i: w for i, w in enumerate(encode(power, 37.25))}
    image.update({3203 + i: w for i, w in enumerate(encode(energy, 123456.789))})
    with ModbusServer({2: {"holding": image}}) as srv:
        site = parse_site(TEMPLATED.format(port=srv.port, extra='template = "schneider-pm5000"'),
                          "t.toml")
        bus = ModbusFieldBus(site)
        bus.start()
        try:
            got = bus.poll().values
        finally:
            bus.stop()
        r = runner.invoke(main, ["modbus", "read", f"127.0.0.1:{srv.port}", "--unit", "2",
                                 "--template", "schneider-pm5000", "--json"])
        assert r.exit_code == 0 and "power            holding 3059" in r.output, r.output
        cli = json.loads(r.output.strip().splitlines()[-1])["values"]
        assert cli["power"] == pytest.approx(37.25)
        assert cli["energy"] == pytest.approx(123456.789, abs=1e-3)  # kWh, from an int64 in Wh
        r = runner.invoke(main, ["modbus", "read", f"127.0.0.1:{srv.port}", "--unit", "9",
                                 "--template", "schneider-pm5000", "--timeout", "0.3"])
        assert r.exit_code != 0 and "Traceback" not in r.output, r.output
    assert got["tu-t2.power"] == (pytest.approx(37.25), "good")
    assert got["tu-t2.energy"][0] == pytest.approx(123456.789, abs=1e-3)
    assert got["tu-t2.current_a"] == (0.0, "good")  # registers the meter has and BEMS reads


MODBUS_METER_SITE = """
[site]
name = "M"
timezone = "Asia/Ho_Chi_Minh"

[[devices]]
id = "pm"
name = "Tủ tổng"
protocol = "modbus"
address = "127.0.0.1:{port}"
unit = 1
timeout_s = 1
template = "schneider-pm5000"
template_points = ["power", "energy"]

[[meters]]
id = "main"
name = "Công tơ tổng"
measures = "main"
power = "pm.power"
energy = "pm.energy"
"""


@integration
def test_a_modbus_meter_reaches_rollups_faults_and_the_city_like_any_other(tmp_path):
    """Three hours of a Modbus meter (the virtual centre's pymodbus server, real TCP) polled
    by the runtime every 5 minutes: the hourly kWh the reports use, the meter-reset fault when
    its register restarts from 0, and the city's 15-minute energy message."""
    import datetime as dt
    import json as json_
    import threading

    import time_machine

    from bems.config import parse_site
    from bems.faults.engine import detect
    from bems.metering import hourly_kwh
    from bems.portfolio.collect import Collector
    from bems.runtime import Runtime
    from connectors.buses import field_bus
    from connectors.simulator.modbus import VirtualModbus
    from devtools.ports import free_port

    site = parse_site(MODBUS_METER_SITE.format(port=free_port()), "m.toml")
    vm = VirtualModbus(site)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(vm.start())
    serving = threading.Thread(target=loop.run_forever, daemon=True)
    serving.start()
    bus = field_bus(site)
    t0 = dt.datetime(2026, 3, 10, 1, 0, tzinfo=dt.timezone.utc)
    rt = Runtime(site, tmp_path / "m.sqlite", bus=bus, poll_interval_s=3600)
    bus.start()
    try:
        with time_machine.travel(t0, tick=False) as clock:
            for k in range(37):  # 01:00 … 04:00 UTC
                clock.move_to(t0 + dt.timedelta(minutes=5 * k))
                energy = 5000.0 + 10.0 * k * 5 / 60 if k < 30 else 0.5 * (k - 29)  # reset
                vm.publish({"pm.power": 10.0, "pm.energy": energy})
                rt.poll()
        stored = rt.store.latest(["pm.power", "pm.energy"])
        assert stored["pm.power"][1:] == (pytest.approx(10.0), "good"), stored
        hours = hourly_kwh(rt.store, site.meter("main"), t0, t0 + dt.timedelta(hours=3))
        assert len(hours) == 3 and all(v == pytest.approx(10.0) for v in hours.values()), hours
        found = detect(site, rt.store, t0, t0 + dt.timedelta(hours=3, minutes=5))
        resets = [f for f in found if f.rule == "meter_reset"]
        assert [f.target for f in resets] == ["main"], [(f.rule, f.target) for f in found]
        collector = Collector(site, rt.store)
        assert collector.collect(t0 + dt.timedelta(hours=4)) > 0
        energy = [json_.loads(body) for _, kind, body, *_ in rt.store.unsent(limit=100)
                  if kind == "energy"]
        series = [v for e in energy for v in e["m"].get("main", []) if v is not None]
        assert series and all(v == pytest.approx(2.5) for v in series), energy
    finally:
        rt.store.close()
        bus.stop()
        loop.call_soon_threadsafe(vm.close)
        loop.call_soon_threadsafe(loop.stop)
        serving.join(5)
        loop.close()
