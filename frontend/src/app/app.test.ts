import { describe, expect, it } from "vitest";
import type { Diagnostic, EdgeGateway } from "../api/types";
import type { CatalogEntry } from "../catalog/types";
import { indexCatalog, specFor } from "../catalog/store";
import { debugTopics, keepMessage } from "../editor/DebugPanel";
import { groupByCategory, searchCatalog } from "../editor/Palette";
import { statusFromEdges } from "../live/useFlowStatus";
import { groupByNode } from "../pages/ImportDialog";
import catalog from "../test/catalog.fixture.json";
import { can } from "./session";
import { parseRoute } from "./router";

const entries = catalog as unknown as CatalogEntry[];

describe("routes", () => {
  it("parses hash routes", () => {
    expect(parseRoute("")).toEqual({ name: "flows" });
    expect(parseRoute("#/flows")).toEqual({ name: "flows" });
    expect(parseRoute("#/flows/line-3")).toEqual({ name: "editor", flowId: "line-3" });
    expect(parseRoute("#/flows/a.b")).toEqual({ name: "not-found", path: "/flows/a.b" });
  });
});

describe("roles", () => {
  it("orders admin ⊃ editor ⊃ viewer", () => {
    expect(can("admin", "editor")).toBe(true);
    expect(can("editor", "editor")).toBe(true);
    expect(can("viewer", "editor")).toBe(false);
    expect(can(undefined, "viewer")).toBe(false);
  });
});

describe("palette", () => {
  it("finds nodes by title, type and description, best first", () => {
    expect(searchCatalog(entries, "scale")[0]!.type).toBe("transform.scale");
    expect(searchCatalog(entries, "python")[0]!.type).toBe("udf.python");
    expect(searchCatalog(entries, "modbus")[0]!.type).toBe("modbus.read");
    expect(searchCatalog(entries, "zzzz")).toEqual([]);
    expect(searchCatalog(entries, "")).toHaveLength(entries.length);
  });
  it("groups by category in the pipeline's order", () => {
    expect(groupByCategory(entries).map(([c]) => c)).toEqual(["device", "transform", "window", "analytics", "udf", "sink"]);
  });
  it("indexes the catalog by type and by type@version", () => {
    const byType = indexCatalog([...entries, { ...entries[0]!, version: 2, title: "Modbus read v2" }]);
    expect(specFor(byType, "modbus.read")!.version).toBe(2);
    expect(specFor(byType, "modbus.read", 1)!.version).toBe(1);
    expect(specFor(byType, "nope")).toBeUndefined();
  });
});

describe("import report", () => {
  it("groups diagnostics per node, flow-level first", () => {
    const d = (node_id: string | null, message: string): Diagnostic => ({ severity: "error", code: "x", message, path: "$", node_id });
    const groups = groupByNode([d("b", "1"), d(null, "2"), d("a", "3"), d("b", "4")]);
    expect(groups.map((g) => [g.key, g.diagnostics.length])).toEqual([
      ["", 1],
      ["a", 1],
      ["b", 2],
    ]);
  });
});

describe("live", () => {
  it("turns heartbeat counters into per-node badges with rates", () => {
    const edge = (out: number, online = true): EdgeGateway =>
      ({
        id: "e1",
        name: "e1",
        description: "",
        created_at: "",
        updated_at: "",
        status: {
          online,
          flows: [{ flow_id: "f", nodes: { scale: { points_in: out, points_out: out, errors: 0, health: "ok" } } }],
        },
      }) as unknown as EdgeGateway;
    const previous = new Map<string, { at: number; out: number }>();
    expect(statusFromEdges([edge(100)], "f", previous, 1000).scale).toMatchObject({ state: "ok", text: "100" });
    expect(statusFromEdges([edge(150)], "f", previous, 6000).scale).toMatchObject({ state: "ok", text: "10/s" });
    expect(statusFromEdges([edge(150, false)], "f", previous, 11000).scale).toMatchObject({ state: "idle", text: "offline" });
    expect(statusFromEdges([edge(150)], "other", new Map(), 0)).toEqual({});
  });
  it("shows a debug sink's own messages, not its tapped input", () => {
    const sinks = new Set(["dbg"]);
    expect(keepMessage({ edge: "e", flow: "f", node: "dbg", message: { label: "x" } }, sinks)).toBe(true);
    expect(keepMessage({ edge: "e", flow: "f", node: "dbg", message: { port: "in" } }, sinks)).toBe(false);
    expect(keepMessage({ edge: "e", flow: "f", node: "scale", message: { port: "out" } }, sinks)).toBe(true);
  });
  it("subscribes to each debug node on each edge it runs on", () => {
    expect(debugTopics("f", new Map([["dbg", ["e2", "e1"]]]))).toEqual(["debug:e1/f/dbg", "debug:e2/f/dbg"]);
  });
});
