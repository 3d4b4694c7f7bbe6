"""A BACnet/IP controller served by bacpypes 0.18 — another implementation than the
bacpypes3 that BEMS itself uses — for the interoperability tests. Run with the interop
virtual environment's Python (tests/interop.py makes it):

    legacy_device.py HOST:PORT INSTANCE OBJECTS

It is what BEMS meets on real sites and never meets in its own simulator:
- no segmentation and a 480-byte APDU, with OBJECTS analog inputs (a 1,000-object list can
  only be read one entry at a time);
- a proprietary object type (513, vendor 555) with a proprietary property;
- a writable analog value without a priority array ("Gateway Setpoint", not commandable),
  next to a commandable one ("Room Setpoint"), a binary output and a lighting output;
- ReadPropertyMultiple and SubscribeCOV.
It prints "ready" once bound and stops on SIGTERM.
"""

import sys

from bacpypes.app import BIPSimpleApplication
from bacpypes.core import run
from bacpypes.local.device import LocalDeviceObject
from bacpypes.local.object import (
    AnalogValueCmdObject, BinaryOutputCmdObject, LightingOutputCmdObject,
)
from bacpypes.object import (
    AnalogInputObject, AnalogValueObject, Object, ReadableProperty, WritableProperty,
    register_object_type,
)
from bacpypes.primitivedata import CharacterString, Real
from bacpypes.service.cov import ChangeOfValueServices
from bacpypes.service.object import ReadWritePropertyMultipleServices

VENDOR = 555


@register_object_type(vendor_id=VENDOR)
class VendorMeterObject(Object):
    """A proprietary object type, as vendors add them (types >= 128)."""
    objectType = 513
    properties = [
        ReadableProperty("presentValue", Real),
        ReadableProperty("units", CharacterString),  # proprietary use of a standard name
    ]


class GatewaySetpoint(AnalogValueObject):
    """Writable, not commandable: a write replaces the value; there is nothing to relinquish."""
    _properties = dict(AnalogValueObject._properties,
                       presentValue=WritableProperty("presentValue", Real))


class RoomSetpoint(AnalogValueCmdObject):
    """bacpypes 0.18.7's own AnalogValueCmdObject refuses every write (write-access-denied):
    AnalogValueObject's read-only present-value shadows the commandable one. Real devices
    have such bugs too; this one is a well-behaved commandable setpoint."""
    _properties = dict(AnalogValueCmdObject._properties, presentValue=next(
        p for k in AnalogValueCmdObject.__mro__ if "properties" in k.__dict__
        for p in k.properties if p.identifier == "presentValue"))


class Application(BIPSimpleApplication, ReadWritePropertyMultipleServices,
                  ChangeOfValueServices):
    pass


def main(address: str, instance: int, count: int) -> None:
    host, port = address.rsplit(":", 1)
    device = LocalDeviceObject(
        objectName=f"Legacy {instance}", objectIdentifier=("device", instance),
        maxApduLengthAccepted=480, segmentationSupported="noSegmentation",
        vendorIdentifier=VENDOR, vendorName="bacpypes 0.18 interop")
    app = Application(device, f"{host}/8:{port}" if host.startswith("127.") else address)
    objects = [
        GatewaySetpoint(objectIdentifier=("analogValue", 1), objectName="Gateway Setpoint",
                        presentValue=26.0, units="degreesCelsius",
                        statusFlags=[0, 0, 0, 0], eventState="normal", outOfService=False),
        RoomSetpoint(objectIdentifier=("analogValue", 2), objectName="Room Setpoint",
                             presentValue=26.0, relinquishDefault=26.0,
                             units="degreesCelsius", statusFlags=[0, 0, 0, 0],
                             eventState="normal", outOfService=False),
        BinaryOutputCmdObject(objectIdentifier=("binaryOutput", 1), objectName="AC Start Stop",
                              presentValue="inactive", relinquishDefault="inactive",
                              statusFlags=[0, 0, 0, 0], eventState="normal",
                              outOfService=False, polarity="normal"),
        LightingOutputCmdObject(objectIdentifier=("lightingOutput", 1),
                                objectName="Office Lights", presentValue=0.0,
                                relinquishDefault=0.0, statusFlags=[0, 0, 0, 0],
                                outOfService=False, blinkWarnEnable=False,
                                egressTime=0, egressActive=False, trackingValue=0.0,
                                defaultFadeTime=100, defaultRampRate=100.0,
                                defaultStepIncrement=1.0, lightingCommandDefaultPriority=16,
                                inProgress="idle", lightingCommand={"operation": "none"}),
        VendorMeterObject(objectIdentifier=(513, 1), objectName="Vendor Meter",
                          presentValue=12.5, units="kW"),
    ]
    for i in range(1, count + 1):
        objects.append(AnalogInputObject(
            objectIdentifier=("analogInput", i), objectName=f"Zone {i} Temperature",
            presentValue=24.0 + (i % 10) / 10, units="degreesCelsius",
            statusFlags=[0, 0, 0, 0], eventState="normal", outOfService=False))
    for obj in objects:
        app.add_object(obj)
    print("ready", flush=True)
    run()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
