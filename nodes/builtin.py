"""The built-in node types, in palette order.

Registered through the ``proxus.nodes`` entry point group (see pyproject.toml), the same way
third-party node packs register theirs.
"""

from nodes.analytics import anomaly, rate_of_change, threshold
from nodes.device import modbus_read, opcua_subscribe, simulator
from nodes.sink import debug, historian, http, nats
from nodes.spec import NodeSpec
from nodes.transform import deadband, expression, quality_filter, rename, scale
from nodes.transform import filter as filter_
from nodes.udf import python
from nodes.window import sliding, tumbling

SPECS: tuple[NodeSpec, ...] = (
    # Device
    modbus_read.SPEC,
    opcua_subscribe.SPEC,
    simulator.SPEC,
    # Transform
    scale.SPEC,
    filter_.SPEC,
    deadband.SPEC,
    expression.SPEC,
    rename.SPEC,
    quality_filter.SPEC,
    # Window
    tumbling.SPEC,
    sliding.SPEC,
    # Analytics
    threshold.SPEC,
    rate_of_change.SPEC,
    anomaly.SPEC,
    # UDF
    python.SPEC,
    # Sink
    historian.SPEC,
    http.SPEC,
    nats.SPEC,
    debug.SPEC,
)

__all__ = ["SPECS"]
