"""The graph compiler: flow + catalog + device/edge registry → one plan per edge, or diagnostics.

A pure function with no I/O. It checks nodes against the catalog (type, version, config), wires
against ports, the graph for cycles and reachability, places source nodes on edges, and cuts the
graph into one plan per edge: each edge gets the part reachable from its sources, in a
deterministic (lexicographic) topological order, so the same flow always yields the same bytes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import networkx as nx

from nodes.spec import NodeConfig, NodeSpec
from proxus.catalog import Catalog
from proxus.diagnostics import Diagnostic, has_errors, join_path, json_path
from proxus.flow import DEFAULT_EDGE, FlowDocument, FlowNode, load_flow, node_path
from proxus.plan import Plan, PlanStep, Wire
from proxus.registry import EMPTY_REGISTRY, Registry
from proxus.validation import decode


@dataclass(frozen=True, slots=True)
class CompileResult:
    """Plans by edge id (empty when there is any error) and every diagnostic found."""

    plans: dict[str, Plan]
    diagnostics: list[Diagnostic]

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)


@dataclass(slots=True)
class _Node:
    index: int
    node: FlowNode
    spec: NodeSpec | None = None
    config: NodeConfig | None = None
    resolved: dict[str, Any] | None = None
    edge: str | None = None  # placement of a source node
    wires: list[Wire] = field(default_factory=list)


class _Compilation:
    def __init__(self, flow: FlowDocument, catalog: Catalog, registry: Registry) -> None:
        self.flow = flow
        self.catalog = catalog
        self.registry = registry
        self.diagnostics: list[Diagnostic] = []
        self.nodes: dict[str, _Node] = {}

    # -- reporting -------------------------------------------------------------------------------

    def error(self, code: str, message: str, *, at: _Node | None = None, **kw: Any) -> None:
        self._add("error", code, message, at, kw)

    def warning(self, code: str, message: str, *, at: _Node | None = None, **kw: Any) -> None:
        self._add("warning", code, message, at, kw)

    def _add(self, severity: Any, code: str, message: str, at: _Node | None, kw: dict[str, Any]) -> None:
        if at is not None:
            kw.setdefault("node_id", at.node.id)
            kw.setdefault("label", at.node.label or None)
            kw.setdefault("path", json_path("nodes", at.index))
        self.diagnostics.append(Diagnostic(severity=severity, code=code, message=message, **kw))

    # -- passes ----------------------------------------------------------------------------------

    def run(self) -> CompileResult:
        self.check_nodes()
        graph = self.check_wires()
        self.check_required_inputs()
        acyclic = self.check_cycles(graph)
        placement = self.place(acyclic)
        plans = self.cut(acyclic, placement)
        self.diagnostics.sort(key=_diagnostic_order)
        return CompileResult({} if has_errors(self.diagnostics) else plans, self.diagnostics)

    def check_nodes(self) -> None:
        for index, node in enumerate(self.flow.nodes):
            if node.id in self.nodes:
                continue  # reported by load_flow as duplicate_node_id; the first one wins
            entry = _Node(index, node)
            self.nodes[node.id] = entry
            spec = self.catalog.get(node.type, node.type_version)
            if spec is None:
                self.report_unknown_type(entry)
                continue
            entry.spec = spec
            raw = self.resolve_device(entry, spec)
            if raw is None:
                continue
            config, problems = decode(raw, spec.config)
            for problem in problems:
                self.error(
                    "invalid_config",
                    f"{_field_name(problem.path)}{problem.message}",
                    at=entry,
                    path=node_path(index, problem.path),
                    hint=_field_hint(spec, problem.path),
                )
            if config is None:
                continue
            semantic = list(config.problems())
            for p in semantic:
                self.error(
                    "invalid_config",
                    f"{_field_name(p.path)}{p.message}",
                    at=entry,
                    path=node_path(index, p.path),
                    hint=p.hint,
                    line=p.line,
                    column=p.column,
                )
            if not semantic:
                entry.config = config
                entry.resolved = msgspec.to_builtins(config)

    def report_unknown_type(self, entry: _Node) -> None:
        node = entry.node
        versions = self.catalog.versions(node.type)
        if versions:
            self.error(
                "unknown_version",
                f"{node.type} has no version {node.type_version} (this Hub knows {_ints(versions)})",
                at=entry,
                path=json_path("nodes", entry.index, "type_version"),
                hint="the flow was made with a different Proxus; update the node pack or re-add the node",
            )
            return
        close = self.catalog.suggest(node.type)
        self.error(
            "unknown_type",
            f"unknown node type {node.type!r}",
            at=entry,
            path=json_path("nodes", entry.index, "type"),
            hint=(f"did you mean {', '.join(close)}?" if close else "install the node pack that provides it"),
        )

    def resolve_device(self, entry: _Node, spec: NodeSpec) -> dict[str, Any] | None:
        """The node's config with its managed device's settings inlined (node fields win)."""
        raw = entry.node.config
        device_id = raw.get("device") if spec.device_protocol else None
        if not isinstance(device_id, str) or not device_id:
            return dict(raw)
        device = self.registry.devices.get(device_id)
        path = node_path(entry.index, "$.device")
        if device is None:
            self.error(
                "unknown_device",
                f"device {device_id!r} is not registered",
                at=entry,
                path=path,
                hint="choose a device from device management, or clear 'device' and set the address here",
            )
            return None
        if device.protocol != spec.device_protocol:
            self.error(
                "wrong_device_protocol",
                f"device {device_id!r} speaks {device.protocol}, but {spec.type_id} needs {spec.device_protocol}",
                at=entry,
                path=path,
            )
            return None
        return {**device.settings, **raw}

    def check_wires(self) -> nx.DiGraph:
        # Topology only: two wires between the same nodes (different ports) are one graph edge.
        graph: nx.DiGraph = nx.DiGraph()
        graph.add_nodes_from(self.nodes)
        seen: dict[tuple[str, str, str, str], str] = {}
        for index, wire in enumerate(self.flow.edges):
            path = json_path("edges", index)
            source, target = self.nodes.get(wire.source), self.nodes.get(wire.target)
            if source is None or target is None:
                missing = [n for n in (wire.source, wire.target) if n not in self.nodes]
                present = target if source is None else source
                self.error(
                    "dangling_edge",
                    f"wire {wire.id} connects to {', '.join(repr(m) for m in missing)}, which is not in the flow",
                    at=present,
                    path=path,
                    edge_id=wire.id,
                    hint="delete the wire or restore the node",
                )
                continue
            key = (wire.source, wire.source_port, wire.target, wire.target_port)
            if key in seen:
                self.error(
                    "duplicate_edge",
                    f"wire {wire.id} repeats wire {seen[key]} ({wire.source}.{wire.source_port} → "
                    f"{wire.target}.{wire.target_port})",
                    at=target,
                    path=path,
                    edge_id=wire.id,
                    hint="delete one of the two wires",
                )
                continue
            seen[key] = wire.id
            if not self.check_ports(index, wire.id, source, wire.source_port, target, wire.target_port):
                continue
            target.wires.append(Wire(wire.target_port, wire.source, wire.source_port))
            graph.add_edge(wire.source, wire.target)
        return graph

    def check_ports(self, index: int, wire_id: str, source: _Node, out_name: str, target: _Node, in_name: str) -> bool:
        """A wire must leave an existing output and enter an input that accepts its kind."""
        path = json_path("edges", index)
        ok = True
        out = in_ = None
        if source.spec is not None:
            if source.spec.is_sink:
                self.error(
                    "sink_has_output",
                    f"{source.spec.title} is a sink: nothing can be wired out of it",
                    at=source,
                    path=path,
                    edge_id=wire_id,
                    hint="sinks end a branch; wire from the node before the sink instead",
                )
                ok = False
            else:
                out = source.spec.output(out_name)
                if out is None:
                    self.error(
                        "unknown_port",
                        f"{source.spec.title} has no output {out_name!r} "
                        f"(it has {_names(p.name for p in source.spec.outputs)})",
                        at=source,
                        path=join_path(path, "$.source_port"),
                        edge_id=wire_id,
                    )
                    ok = False
        if target.spec is not None:
            if target.spec.is_source:
                self.error(
                    "source_has_input",
                    f"{target.spec.title} is a device node (a source): it takes no input",
                    at=target,
                    path=path,
                    edge_id=wire_id,
                    hint="device nodes start a flow; delete the wire",
                )
                ok = False
            else:
                in_ = target.spec.input(in_name)
                if in_ is None:
                    self.error(
                        "unknown_port",
                        f"{target.spec.title} has no input {in_name!r} "
                        f"(it has {_names(p.name for p in target.spec.inputs)})",
                        at=target,
                        path=join_path(path, "$.target_port"),
                        edge_id=wire_id,
                    )
                    ok = False
        if out is not None and in_ is not None and out.kind not in in_.accepts:
            self.error(
                "port_kind_mismatch",
                f"{out_name!r} carries {out.kind.value}, but input {in_name!r} of {target.node.label or target.node.id}"
                f" accepts {_names(k.value for k in in_.accepts)}",
                at=target,
                path=path,
                edge_id=wire_id,
                hint="wire a port of the matching kind",
            )
            ok = False
        return ok and source.spec is not None and target.spec is not None

    def check_required_inputs(self) -> None:
        for entry in self.nodes.values():
            if entry.spec is None:
                continue
            wired = {w.port for w in entry.wires}
            for port in entry.spec.inputs:
                if port.required and port.name not in wired:
                    self.error(
                        "missing_input",
                        f"input {port.name!r} is not connected",
                        at=entry,
                        hint=f"wire something that emits {_names(k.value for k in port.accepts)} into it",
                    )

    def check_cycles(self, simple: nx.DiGraph) -> nx.DiGraph:
        """Report every node on a cycle; return the graph without them."""
        on_cycle: set[str] = set()
        for component in nx.strongly_connected_components(simple):
            if len(component) == 1:
                (only,) = component
                if not simple.has_edge(only, only):
                    continue
            sub = simple.subgraph(component)
            loop = [u for u, _v in nx.find_cycle(sub, source=min(component))]
            described = " → ".join([*loop, loop[0]])
            members = sorted(component)
            for node_id in members:
                self.error(
                    "cycle",
                    f"part of a cycle: {described}"
                    + (f" (cycle members: {', '.join(members)})" if len(members) > len(loop) else ""),
                    at=self.nodes[node_id],
                    hint="flows run in one direction; remove one wire of the loop",
                )
            on_cycle |= component
        if on_cycle:
            simple = simple.copy()
            simple.remove_nodes_from(on_cycle)
        return simple

    def place(self, graph: nx.DiGraph) -> dict[str, frozenset[str]]:
        """Which edges' data reaches each node, propagated in topological order."""
        reach: dict[str, frozenset[str]] = {}
        default = self.flow.metadata.default_edge or DEFAULT_EDGE
        for node_id in nx.topological_sort(graph):
            entry = self.nodes[node_id]
            if entry.spec is not None and entry.spec.is_source:
                edge = self.source_edge(entry, default)
                entry.edge = edge
                reach[node_id] = frozenset((edge,)) if edge else frozenset()
                continue
            acc: frozenset[str] = frozenset()
            for pred in graph.predecessors(node_id):
                acc |= reach.get(pred, frozenset())
            reach[node_id] = acc
        for node_id, edges in reach.items():
            entry = self.nodes[node_id]
            if entry.spec is None:
                continue
            if not edges and not entry.spec.is_source:
                self.warning(
                    "unreachable",
                    "no device feeds this node, so it will never run",
                    at=entry,
                    hint="wire it to a device node, or delete it",
                )
            elif len(edges) > 1 and entry.spec.stateful:
                self.error(
                    "stateful_across_edges",
                    f"{entry.spec.title} keeps state but is fed from devices on edges {_names(sorted(edges))}",
                    at=entry,
                    hint="a stateful node must see all its input on one edge: use one such node per edge",
                )
        return reach

    def source_edge(self, entry: _Node, default: str) -> str | None:
        device_edge = None
        if entry.spec is not None and entry.spec.device_protocol:
            device_id = entry.node.config.get("device")
            device = self.registry.devices.get(device_id) if isinstance(device_id, str) else None
            device_edge = device.edge if device is not None else None
        edge = entry.node.edge or device_edge or default
        if entry.node.edge and device_edge and entry.node.edge != device_edge:
            self.error(
                "edge_mismatch",
                f"the node is placed on edge {entry.node.edge!r} but its device is reached through {device_edge!r}",
                at=entry,
                path=json_path("nodes", entry.index, "edge"),
                hint="clear the node's edge to use the device's",
            )
        if self.registry.edges is not None and edge not in self.registry.edges:
            self.error(
                "unknown_edge",
                f"edge {edge!r} is not registered",
                at=entry,
                path=json_path("nodes", entry.index, "edge"),
                hint=(
                    "register the edge, or pick one of " + _names(sorted(self.registry.edges))
                    if self.registry.edges
                    else "no edge is registered yet: register one on the Edges page (proxus hub starts 'local')"
                ),
            )
        return edge

    def cut(self, graph: nx.DiGraph, reach: dict[str, frozenset[str]]) -> dict[str, Plan]:
        members: dict[str, set[str]] = defaultdict(set)
        for node_id, edges in reach.items():
            for edge in edges:
                members[edge].add(node_id)
        plans: dict[str, Plan] = {}
        for edge in sorted(members):
            part = members[edge]
            # A fresh graph sorts faster than a subgraph view; with one edge the whole graph is the part.
            sub = graph if len(part) == graph.number_of_nodes() else nx.DiGraph(graph.subgraph(part))
            steps = []
            for node_id in nx.lexicographical_topological_sort(sub):
                entry = self.nodes[node_id]
                if entry.spec is None or entry.resolved is None:
                    continue
                wires = tuple(
                    sorted(w for w in entry.wires if w.source in part)  # only this edge's part
                )
                steps.append(
                    PlanStep(
                        node_id=node_id,
                        type=entry.spec.type_id,
                        type_version=entry.spec.version,
                        label=entry.node.label,
                        stateful=entry.spec.stateful,
                        config=entry.resolved,
                        inputs=wires,
                    )
                )
            plans[edge] = Plan(
                plan_id=f"{self.flow.id}@{edge}",
                flow_id=self.flow.id,
                flow_name=self.flow.name,
                flow_version=self.flow.version,
                edge=edge,
                steps=tuple(steps),
            ).with_hash()
        return plans


def _diagnostic_order(d: Diagnostic) -> tuple[int, str, str]:
    return (0 if d.severity == "error" else 1, d.path, d.code)


def _names(items: Iterable[str]) -> str:
    listed = [f"'{i}'" for i in items]
    return ", ".join(listed) if listed else "none"


def _ints(items: Iterable[int]) -> str:
    return ", ".join(f"v{i}" for i in items)


def _field_name(relative: str) -> str:
    return "" if relative in ("", "$") else f"{relative[2:] if relative.startswith('$.') else relative}: "


def _field_hint(spec: NodeSpec, relative: str) -> str:
    """The field's own help text, so the user sees what it expects next to what went wrong."""
    if not relative.startswith("$.") or "[" in relative.split(".")[1]:
        return ""
    name = relative[2:].split(".")[0].split("[")[0]
    schema = spec.config_schema()
    ref = schema.get("$ref", "").rsplit("/", 1)[-1]
    prop = schema.get("$defs", {}).get(ref, schema).get("properties", {}).get(name, {})
    description = prop.get("description", "")
    return f"{name}: {description}" if description else ""


def compile_flow(flow: FlowDocument, catalog: Catalog, registry: Registry = EMPTY_REGISTRY) -> CompileResult:
    """Compile a structurally valid flow document into one plan per edge."""
    return _Compilation(flow, catalog, registry).run()


def validate_flow(
    data: bytes | str | dict[str, Any], catalog: Catalog, registry: Registry = EMPTY_REGISTRY
) -> tuple[FlowDocument | None, CompileResult]:
    """The whole import check: document shape, then everything the compiler checks."""
    doc, diagnostics = load_flow(data)
    if doc is None:
        return None, CompileResult({}, diagnostics)
    result = compile_flow(doc, catalog, registry)
    combined = sorted([*diagnostics, *result.diagnostics], key=_diagnostic_order)
    return doc, CompileResult({} if has_errors(combined) else result.plans, combined)


__all__ = ["CompileResult", "compile_flow", "validate_flow"]
