"""The virtual administrative centre: EnergyPlus physics served as BACnet/IP devices on loopback."""
