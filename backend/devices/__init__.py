"""The devices domain: managed Modbus and OPC UA devices, their register maps, connection tests.

Other domains use :func:`registry` (all devices and edges, for the compiler) and may set
``app.state.on_device_changed`` (``async def (device_id)``), which is called after every change.
"""

from backend.devices.controllers import DeviceController
from backend.devices.service import registry

CONTROLLERS: list[object] = [DeviceController]

__all__ = ["CONTROLLERS", "registry"]
