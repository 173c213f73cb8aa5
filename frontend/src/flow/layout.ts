/**
 * Auto-layout with ELK (layered, left to right, ports on the sides). elkjs is loaded on first
 * use so it does not weigh on the editor's start-up.
 */
import type { ElkNode, ElkExtendedEdge } from "elkjs/lib/elk-api";

export interface LayoutNode {
  id: string;
  width: number;
  height: number;
  inputs: string[];
  outputs: string[];
}

export interface LayoutEdge {
  id: string;
  source: string;
  sourcePort: string;
  target: string;
  targetPort: string;
}

export interface ElkLike {
  layout(graph: ElkNode): Promise<ElkNode>;
}

export const LAYOUT_OPTIONS: Record<string, string> = {
  "elk.algorithm": "layered",
  "elk.direction": "RIGHT",
  "elk.edgeRouting": "SPLINES",
  "elk.layered.spacing.nodeNodeBetweenLayers": "90",
  "elk.spacing.nodeNode": "36",
  "elk.spacing.componentComponent": "60",
  "elk.layered.nodePlacement.strategy": "BRANDES_KOEPF",
  "elk.layered.considerModelOrder.strategy": "NODES_AND_EDGES",
  "elk.separateConnectedComponents": "true",
};

const portId = (node: string, side: "in" | "out", port: string) => `${node}\u0001${side}\u0001${port}`;

export function toElkGraph(nodes: LayoutNode[], edges: LayoutEdge[]): ElkNode {
  const ids = new Set(nodes.map((n) => n.id));
  return {
    id: "root",
    layoutOptions: LAYOUT_OPTIONS,
    children: nodes.map((n) => ({
      id: n.id,
      width: n.width,
      height: n.height,
      layoutOptions: { "elk.portConstraints": "FIXED_ORDER" },
      ports: [
        ...n.inputs.map((p, i) => ({
          id: portId(n.id, "in", p),
          width: 8,
          height: 8,
          layoutOptions: { "elk.port.side": "WEST", "elk.port.index": String(i) },
        })),
        ...n.outputs.map((p, i) => ({
          id: portId(n.id, "out", p),
          width: 8,
          height: 8,
          layoutOptions: { "elk.port.side": "EAST", "elk.port.index": String(n.outputs.length - i) },
        })),
      ],
    })),
    edges: edges
      .filter((e) => ids.has(e.source) && ids.has(e.target))
      .map(
        (e): ElkExtendedEdge => ({
          id: e.id,
          sources: [portId(e.source, "out", e.sourcePort)],
          targets: [portId(e.target, "in", e.targetPort)],
        }),
      ),
  };
}

/** New top-left positions, keyed by node id, anchored at `origin`. */
export async function computeLayout(
  nodes: LayoutNode[],
  edges: LayoutEdge[],
  origin: { x: number; y: number } = { x: 0, y: 0 },
  elk?: ElkLike,
): Promise<Map<string, { x: number; y: number }>> {
  const engine = elk ?? (await loadElk());
  // Wires to ports a node does not declare (an edited catalog) would make ELK throw.
  const ports = new Map(nodes.map((n) => [n.id, n]));
  const usable = edges.filter(
    (e) => ports.get(e.source)?.outputs.includes(e.sourcePort) && ports.get(e.target)?.inputs.includes(e.targetPort),
  );
  const result = await engine.layout(toElkGraph(nodes, usable));
  const out = new Map<string, { x: number; y: number }>();
  const children = result.children ?? [];
  // ELK pads the graph; anchor the laid-out block's top-left corner at the origin.
  const x0 = Math.min(...children.map((c) => c.x ?? 0));
  const y0 = Math.min(...children.map((c) => c.y ?? 0));
  for (const c of children) out.set(c.id, { x: (c.x ?? 0) - x0 + origin.x, y: (c.y ?? 0) - y0 + origin.y });
  return out;
}

let elkPromise: Promise<ElkLike> | null = null;
export function loadElk(): Promise<ElkLike> {
  elkPromise ??= import("elkjs/lib/elk.bundled.js").then((m) => {
    const ELK = (m as unknown as { default: new () => ElkLike }).default;
    return new ELK();
  });
  return elkPromise;
}
