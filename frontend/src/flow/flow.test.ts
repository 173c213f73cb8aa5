import { describe, expect, it } from "vitest";
import type { FlowDocument } from "../api/types";
import type { CatalogEntry } from "../catalog/types";
import catalog from "../test/catalog.fixture.json";
import { copySelection, parseClipboard, pastePayload } from "./clipboard";
import { checkConnection, firstCompatible } from "./connect";
import { allDiagnostics, configPath, deployFailureDiagnostics, indexDiagnostics, nodeField } from "./diagnostics";
import { diffDocuments, diffMarks, wireMarks } from "./diff";
import { documentToGraph, graphToDocument, isFrame, layoutFrames, newNodeId } from "./graph";
import { computeLayout } from "./layout";

const entries = catalog as unknown as CatalogEntry[];
const byType = new Map(entries.map((e) => [e.type, e]));

const doc: FlowDocument = {
  format: "proxus.flow",
  schema_version: 1,
  id: "line",
  name: "Line",
  version: 3,
  nodes: [
    { id: "sim", type: "simulator", type_version: 1, label: "Sim", position: { x: 0, y: 0 }, config: { rate_hz: 2 } },
    { id: "scale", type: "transform.scale", type_version: 1, label: "", position: { x: 260, y: 0 }, config: { factor: 2 } },
    { id: "alarm", type: "analytics.threshold", type_version: 1, label: "", position: { x: 520, y: 0 }, config: {} },
    { id: "debug", type: "sink.debug", type_version: 1, label: "", position: { x: 780, y: 0 }, config: {} },
  ],
  edges: [
    { id: "w1", source: "sim", source_port: "out", target: "scale", target_port: "in" },
    { id: "w2", source: "scale", source_port: "out", target: "alarm", target_port: "in" },
    { id: "w3", source: "alarm", source_port: "events", target: "debug", target_port: "in" },
  ],
  groups: [{ id: "g1", label: "Source", nodes: ["sim", "scale"] }],
  comments: [{ id: "n1", text: "hello", position: { x: 0, y: 200 } }],
};

const kindOf = (t: string, p: string) => byType.get(t)?.outputs.find((o) => o.name === p)?.kind;

describe("document ↔ graph", () => {
  it("round-trips nodes, wires, groups and comments", () => {
    const graph = documentToGraph(doc, kindOf);
    expect(graph.nodes.filter((n) => n.type === "proxus")).toHaveLength(4);
    expect(graph.edges.find((e) => e.id === "w3")?.data?.kind).toBe("events");
    const back = graphToDocument({ id: "line", name: "Line", version: 3 }, graph);
    expect(back.nodes).toEqual(doc.nodes);
    expect(back.edges).toEqual(doc.edges);
    expect(back.groups).toEqual(doc.groups);
    expect(back.comments).toEqual(doc.comments);
  });

  it("draws a frame around its members", () => {
    const graph = documentToGraph(doc);
    const frame = graph.nodes.find(isFrame)!;
    expect(frame.position.x).toBeLessThan(0);
    expect(frame.width).toBeGreaterThan(260 + 200);
    const moved = layoutFrames(graph.nodes.map((n) => (n.id === "scale" ? { ...n, position: { x: 600, y: 0 } } : n)));
    expect(moved.find(isFrame)!.width).toBeGreaterThan(frame.width!);
  });

  it("derives readable, unique node ids", () => {
    const taken = new Set(["scale", "scale_2"]);
    expect(newNodeId("transform.scale", (id) => taken.has(id))).toBe("scale_3");
    expect(newNodeId("sink.debug", () => false)).toBe("debug");
  });
});

describe("connections", () => {
  const specOf = (id: string) => byType.get(doc.nodes!.find((n) => n.id === id)?.type ?? "");
  it("allows an output into an input that accepts its kind", () => {
    expect(checkConnection({ source: "sim", target: "debug", sourceHandle: "out", targetHandle: "in" }, specOf)).toEqual({
      ok: true,
      kind: "points",
    });
  });
  it("refuses events into a points-only input, self loops and duplicates", () => {
    const r = checkConnection({ source: "alarm", target: "scale", sourceHandle: "events", targetHandle: "in" }, specOf);
    expect(r.ok).toBe(false);
    expect(checkConnection({ source: "scale", target: "scale", sourceHandle: "out", targetHandle: "in" }, specOf).ok).toBe(false);
    const dup = checkConnection({ source: "sim", target: "scale", sourceHandle: "out", targetHandle: "in" }, specOf, [
      { source: "sim", target: "scale", sourceHandle: "out", targetHandle: "in" },
    ]);
    expect(dup).toEqual({ ok: false, reason: "already connected" });
  });
  it("has no way into a device (no inputs) or out of a sink (no outputs)", () => {
    expect(checkConnection({ source: "scale", target: "sim", sourceHandle: "out", targetHandle: "in" }, specOf).ok).toBe(false);
    expect(checkConnection({ source: "debug", target: "scale", sourceHandle: "out", targetHandle: "in" }, specOf).ok).toBe(false);
  });
  it("finds the first compatible port pair for auto-wiring", () => {
    expect(firstCompatible(byType.get("analytics.threshold")!, byType.get("sink.debug")!)).toEqual({ output: "events", input: "in" });
    expect(firstCompatible(byType.get("analytics.threshold")!, byType.get("transform.scale")!)).toBeNull();
  });
});

describe("diff highlighting", () => {
  it("marks added, removed and changed nodes and wires", () => {
    const after: FlowDocument = {
      ...doc,
      nodes: [
        doc.nodes![0]!,
        { ...doc.nodes![1]!, config: { factor: 3 } },
        { ...doc.nodes![2]!, position: { x: 999, y: 0 } },
        { id: "hist", type: "sink.historian", type_version: 1, label: "", position: { x: 0, y: 0 }, config: {} },
      ],
      edges: [doc.edges![0]!, doc.edges![1]!, { id: "w9", source: "alarm", source_port: "events", target: "hist", target_port: "in" }],
    };
    const d = diffDocuments(doc, after);
    expect(d.added.map((n) => n.id)).toEqual(["hist"]);
    expect(d.removed.map((n) => n.id)).toEqual(["debug"]);
    expect(d.changed.map((c) => [c.node.id, c.fields])).toEqual([
      ["scale", ["config"]],
      ["alarm", ["position"]],
    ]);
    expect(diffMarks(d)).toEqual({ hist: "added", debug: "removed", scale: "changed" });
    expect(wireMarks(d)).toEqual({ w9: "added", w3: "removed" });
    expect(diffDocuments(doc, doc).identical).toBe(true);
  });
});

describe("diagnostics", () => {
  it("sorts diagnostics onto nodes and wires, and finds config paths", () => {
    const index = indexDiagnostics([
      { severity: "error", code: "cycle", message: "cycle", path: "$.edges[1]", node_id: "scale", edge_id: "w2" },
      { severity: "warning", code: "x", message: "bad port", path: "$.nodes[0].config.port", node_id: "sim" },
      { severity: "error", code: "y", message: "flow", path: "$" },
    ]);
    expect(index.errors).toBe(2);
    expect(index.warnings).toBe(1);
    expect(Object.keys(index.byNode).sort()).toEqual(["scale", "sim"]);
    expect(index.byEdge.w2).toHaveLength(1);
    expect(index.general).toHaveLength(1);
    expect(configPath("$.nodes[12].config.registers[0].address")).toBe("$.registers[0].address");
    expect(configPath("$.nodes[12].config")).toBe("$");
    expect(configPath("$.nodes[1].label")).toBeNull();
    expect(nodeField("$.nodes[1].label")).toBe("label");
  });
});

describe("clipboard", () => {
  it("copies a selection with its inner wires and pastes it with fresh ids", () => {
    const graph = documentToGraph(doc, kindOf);
    const payload = copySelection(graph, new Set(["sim", "scale", "debug"]))!;
    expect(payload.nodes.map((n) => n.id)).toEqual(["sim", "scale", "debug"]);
    expect(payload.edges.map((e) => e.id)).toEqual(["w1"]);
    const parsed = parseClipboard(JSON.stringify(payload))!;
    const taken = new Set(graph.nodes.map((n) => n.id));
    const pasted = pastePayload(parsed, (id) => taken.has(id), { x: 1000, y: 500 });
    const ids = pasted.nodes.map((n) => n.id);
    expect(ids).toEqual(["sim_2", "scale_2", "debug_2"]);
    expect(pasted.nodes[0]!.position).toEqual({ x: 1000, y: 500 });
    expect(pasted.edges).toHaveLength(1);
    expect(pasted.edges[0]).toMatchObject({ source: "sim_2", target: "scale_2" });
  });
  it("accepts a whole flow file and ignores other text", () => {
    expect(parseClipboard(JSON.stringify(doc))?.nodes).toHaveLength(4);
    expect(parseClipboard("hello")).toBeNull();
    expect(parseClipboard('{"format":"other"}')).toBeNull();
  });
});

describe("auto-layout", () => {
  it("places a chain left to right without overlaps", async () => {
    const nodes = doc.nodes!.map((n) => ({
      id: n.id,
      width: 200,
      height: 56,
      inputs: byType.get(n.type)!.inputs.map((p) => p.name),
      outputs: byType.get(n.type)!.outputs.map((p) => p.name),
    }));
    const edges = doc.edges!.map((e) => ({ id: e.id, source: e.source, sourcePort: e.source_port!, target: e.target, targetPort: e.target_port! }));
    const pos = await computeLayout(nodes, edges, { x: 100, y: 50 });
    const xs = ["sim", "scale", "alarm", "debug"].map((id) => pos.get(id)!.x);
    expect(xs).toEqual([...xs].sort((a, b) => a - b));
    for (let i = 1; i < xs.length; i++) expect(xs[i]! - xs[i - 1]!).toBeGreaterThanOrEqual(200);
    expect(Math.min(...[...pos.values()].map((p) => p.x))).toBe(100);
  });
});

describe("deploy failures as markers", () => {
  it("puts a refused step on its node and keeps other failures general", () => {
    const diags = deployFailureDiagnostics([
      { edge: "line1", state: "failed", error: "step avg: this edge has no node type window.tumbling v1" },
      { edge: "line2", state: "failed", error: "credentials not available on this edge: cloud" },
      { edge: "line3", state: "applied", error: "" },
    ]);
    expect(diags.map((d) => d.node_id)).toEqual(["avg", null]);
    expect(diags[0].message).toContain("edge line1 did not apply the plan: this edge has no node type");
    const index = indexDiagnostics(diags);
    expect(index.byNode.avg).toHaveLength(1);
    expect(allDiagnostics(index)).toHaveLength(2);
  });
});
