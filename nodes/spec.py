"""The declaration every node type makes: identity, ports, config struct and checks.

A node type is declared once, in its own module under ``nodes/``, as a :class:`NodeSpec`.
The Hub serves these declarations (with JSON Schemas that msgspec generates from the config
struct), the editor draws nodes and forms from them, the compiler validates flows against them
and the runtime looks up behaviour through them. Nothing else describes a node type.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import msgspec


class Category(enum.StrEnum):
    """Where a node type sits in the palette, and what role it may play in a graph."""

    DEVICE = "device"
    TRANSFORM = "transform"
    WINDOW = "window"
    ANALYTICS = "analytics"
    UDF = "udf"
    SINK = "sink"


class PortKind(enum.StrEnum):
    """The kind of data that travels on a wire."""

    POINTS = "points"  # batches of points (see nodes.points.Batch)
    EVENTS = "events"  # batches of alarm events (see nodes.points.Event)


@dataclass(frozen=True, slots=True)
class OutputPort:
    """A port a node emits on; it carries exactly one kind of data."""

    name: str
    kind: PortKind
    description: str


@dataclass(frozen=True, slots=True)
class InputPort:
    """A port a node receives on; it accepts one or more kinds of data."""

    name: str
    accepts: frozenset[PortKind]
    description: str
    required: bool = True


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """A semantic problem in an otherwise well-typed config.

    ``path`` is a JSON path relative to the node's config (``$.registers[2].address``);
    ``position`` is an offset inside a text field (expressions, code) when one applies.
    """

    path: str
    message: str
    hint: str = ""
    line: int | None = None
    column: int | None = None


class NodeConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Base for every node config struct.

    Subclasses document themselves: the class docstring is the node's help text and every field
    carries ``Annotated[..., Meta(description=...)]``. ``problems`` reports what types alone cannot
    express (an expression that does not parse, a register map that overlaps); it never runs user
    code.
    """

    def problems(self) -> Iterator[ConfigProblem]:
        return iter(())


@cache
def _config_schema(config: type[NodeConfig]) -> dict[str, Any]:
    return msgspec.json.schema(config)


def _check_type_id(type_id: str) -> None:
    parts = type_id.split(".")
    if not all(p and p.replace("_", "").isalnum() and p.islower() for p in parts):
        raise ValueError(f"node type id {type_id!r} must be dotted lower-case words, e.g. 'transform.scale'")


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One node type, as the catalog knows it."""

    type_id: str
    version: int
    category: Category
    title: str
    description: str
    config: type[NodeConfig]
    example: NodeConfig
    inputs: tuple[InputPort, ...] = ()
    outputs: tuple[OutputPort, ...] = ()
    # A stateful node keeps memory between batches (windows, alarms, UDF state); it must see all
    # of its input on one edge, so the compiler refuses to feed it from devices on two edges.
    stateful: bool = False
    # Device nodes name the protocol of the managed devices they accept, so the compiler can
    # inline a device's settings from device management into the node's config.
    device_protocol: str | None = None
    icon: str = "box"
    # Builds the node's runtime behaviour from its decoded config and host context.
    behaviour: Callable[..., Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _check_type_id(self.type_id)
        if self.version < 1:
            raise ValueError(f"{self.type_id}: version must be >= 1")
        if not isinstance(self.example, self.config):
            raise TypeError(f"{self.type_id}: example must be a {self.config.__name__}")
        names = [p.name for p in self.inputs] + [p.name for p in self.outputs]
        if len(set(p.name for p in self.inputs)) != len(self.inputs) or len(set(p.name for p in self.outputs)) != len(
            self.outputs
        ):
            raise ValueError(f"{self.type_id}: duplicate port names in {names}")
        if self.category is Category.DEVICE and self.inputs:
            raise ValueError(f"{self.type_id}: device nodes are sources and take no inputs")
        if self.category is Category.SINK and self.outputs:
            raise ValueError(f"{self.type_id}: sink nodes take no outputs")

    @property
    def is_source(self) -> bool:
        return self.category is Category.DEVICE

    @property
    def is_sink(self) -> bool:
        return self.category is Category.SINK

    def input(self, name: str) -> InputPort | None:
        return next((p for p in self.inputs if p.name == name), None)

    def output(self, name: str) -> OutputPort | None:
        return next((p for p in self.outputs if p.name == name), None)

    def config_schema(self) -> dict[str, Any]:
        """The JSON Schema of the config, generated by msgspec (cached per config type)."""
        return _config_schema(self.config)


def points_in(name: str = "in", description: str = "Batches of points", required: bool = True) -> InputPort:
    return InputPort(name, frozenset({PortKind.POINTS}), description, required)


def points_out(name: str = "out", description: str = "Batches of points") -> OutputPort:
    return OutputPort(name, PortKind.POINTS, description)


def events_out(name: str = "events", description: str = "Alarm events (raise / clear)") -> OutputPort:
    return OutputPort(name, PortKind.EVENTS, description)


def any_in(name: str = "in", description: str = "Batches of points or events") -> InputPort:
    return InputPort(name, frozenset({PortKind.POINTS, PortKind.EVENTS}), description)
