import { describe, expect, it } from "vitest";
import type { FlowDocument } from "../api/types";
import type { CatalogEntry } from "../catalog/types";
import { copySelection } from "../flow/clipboard";
import { isFrame } from "../flow/graph";
import catalog from "../test/catalog.fixture.json";
import { createEditorStore } from "./store";

const entries = catalog as unknown as CatalogEntry[];
const spec = (t: string) => entries.find((e) => e.type === t)!;

function fresh() {
  const store = createEditorStore({ id: "f", name: "F", version: 1 });
  const doc: FlowDocument = { format: "proxus.flow", schema_version: 1, id: "f", name: "F", version: 1, nodes: [], edges: [] };
  store.getState().load(doc, 1, () => "points");
  return store;
}

describe("editor store", () => {
  it("gives loaded nodes their expected size, and lays frames out around it", () => {
    const store = createEditorStore({ id: "f", name: "F", version: 1 });
    const node = (id: string, type: string, x: number) => ({ id, type, type_version: 1, label: "", position: { x, y: 0 }, config: {} });
    const doc: FlowDocument = {
      format: "proxus.flow",
      schema_version: 1,
      id: "f",
      name: "F",
      version: 1,
      nodes: [node("a", "simulator", 0), node("b", "sink.debug", 300)],
      edges: [],
      groups: [{ id: "g", label: "G", nodes: ["a", "b"] }],
    };
    const sizeOf = (type: string) => (type === "unknown.type" ? undefined : { width: 200, height: 56 });
    store.getState().load(doc, 1, () => "points", sizeOf);
    const byId = new Map(store.getState().nodes.map((n) => [n.id, n]));
    expect(byId.get("a")?.measured).toEqual({ width: 200, height: 56 });
    expect(byId.get("b")?.measured).toEqual({ width: 200, height: 56 });
    const frame = store.getState().nodes.find(isFrame)!;
    // Padding 28 around the members and a 26 px title: 56 px high nodes, not the 64 px default.
    expect(frame.position).toEqual({ x: -28, y: -54 });
    expect([frame.width, frame.height]).toEqual([500 + 56, 56 + 56 + 26]);
    expect(store.getState().toDocument().nodes?.[0]).not.toHaveProperty("measured");
  });

  it("adds nodes with default configs, wires them, and undoes/redoes each step", () => {
    const store = fresh();
    const s = () => store.getState();
    const a = s().addNode(spec("simulator"), { x: 0, y: 0 });
    const b = s().addNode(spec("sink.debug"), { x: 300, y: 0 });
    expect([a, b]).toEqual(["simulator", "debug"]);
    expect(s().dirty).toBe(true);
    expect(s().selectedNodes).toEqual(["debug"]);
    s().connect({ source: a, target: b, sourceHandle: "out", targetHandle: "in" }, "points");
    const doc = s().toDocument();
    expect(doc.nodes?.[0]?.config).toEqual({ device_name: "sim", rate_hz: 1, tags: [] });
    expect(doc.edges).toHaveLength(1);
    s().undo();
    expect(s().edges).toHaveLength(0);
    s().undo();
    expect(s().nodes).toHaveLength(1);
    s().redo();
    s().redo();
    expect(s().toDocument().edges).toHaveLength(1);
  });

  it("wires a quick-added node with the kind of the output it comes from", () => {
    const store = fresh();
    const s = () => store.getState();
    const a = s().addNode(spec("transform.scale"), { x: 0, y: 0 });
    s().addNode(spec("sink.debug"), { x: 300, y: 0 }, { node: a, port: "out", input: "in", kind: "points" });
    expect(s().edges[0]).toMatchObject({ source: a, target: "debug", data: { kind: "points" }, className: "wire-points" });
  });

  it("coalesces rapid edits of one field into one undo step", () => {
    const store = fresh();
    const s = () => store.getState();
    const id = s().addNode(spec("transform.scale"), { x: 0, y: 0 });
    const steps = s().past.length;
    for (const f of [1, 12, 123]) s().updateNode(id, { config: { factor: f } }, "$.factor");
    expect(s().past.length).toBe(steps + 1);
    s().undo();
    expect(s().toDocument().nodes?.[0]?.config).toMatchObject({ factor: 1 });
  });

  it("groups a selection in a frame; deleting the members removes the frame", () => {
    const store = fresh();
    const s = () => store.getState();
    const a = s().addNode(spec("simulator"), { x: 0, y: 0 });
    const b = s().addNode(spec("transform.scale"), { x: 300, y: 0 });
    s().selectOnly([a, b]);
    const frame = s().groupSelection("Line 1");
    expect(frame).toBeTruthy();
    expect(s().toDocument().groups).toEqual([{ id: expect.any(String), label: "Line 1", nodes: [a, b] }]);
    s().deleteElements([a, b], []);
    expect(s().nodes.some(isFrame)).toBe(false);
    expect(s().toDocument().groups).toBeUndefined();
  });

  it("pastes copied nodes with fresh ids and keeps their inner wire", () => {
    const store = fresh();
    const s = () => store.getState();
    const a = s().addNode(spec("simulator"), { x: 0, y: 0 });
    const b = s().addNode(spec("sink.debug"), { x: 300, y: 0 });
    s().connect({ source: a, target: b, sourceHandle: "out", targetHandle: "in" }, "points");
    s().selectAll();
    const payload = copySelection({ nodes: s().nodes, edges: s().edges }, new Set(s().selectedNodes))!;
    expect(s().paste(payload, { x: 0, y: 200 })).toBe(2);
    const doc = s().toDocument();
    expect(doc.nodes?.map((n) => n.id)).toEqual(["simulator", "debug", "simulator_2", "debug_2"]);
    expect(doc.edges?.map((e) => `${e.source}>${e.target}`)).toEqual(["simulator>debug", "simulator_2>debug_2"]);
  });

  it("changes nothing when read-only", () => {
    const store = createEditorStore({ id: "f", name: "F", version: 1 }, true);
    const s = () => store.getState();
    s().load({ format: "proxus.flow", schema_version: 1, id: "f", name: "F", version: 1, nodes: [{ id: "x", type: "simulator" }] }, 1, () => undefined);
    s().selectAll();
    s().deleteSelection();
    s().updateNode("x", { label: "y" });
    s().onNodesChange([{ type: "position", id: "x", position: { x: 50, y: 50 }, dragging: true }]);
    expect(s().nodes).toHaveLength(1);
    expect(s().toDocument().nodes?.[0]).toMatchObject({ label: "", position: { x: 0, y: 0 } });
    expect(s().dirty).toBe(false);
  });

  it("records name and metadata changes in the history", () => {
    const store = fresh();
    const s = () => store.getState();
    s().setName("Renamed");
    s().setMetadata({ default_edge: "plant-a" });
    expect(s().toDocument()).toMatchObject({ name: "Renamed", metadata: { default_edge: "plant-a" } });
    s().undo();
    expect(s().toDocument().metadata?.default_edge).toBeUndefined();
    s().undo();
    expect(s().toDocument().name).toBe("F");
  });
});
