/**
 * The flow document ↔ the editor's React Flow graph. Pure functions.
 *
 * Canvas node kinds: `proxus` (a catalog node), `frame` (a group, drawn around its members) and
 * `comment` (a sticky note). Frame and comment ids are prefixed (`g:`/`c:`) so they never clash
 * with node ids, which cannot contain a colon.
 */
import type { Edge, Node, XYPosition } from "@xyflow/react";
import type { FlowComment, FlowDocument, FlowEdge, FlowGroup, FlowNode } from "../api/types";

export interface ProxusNodeData extends Record<string, unknown> {
  type: string;
  typeVersion: number;
  label: string;
  config: Record<string, unknown>;
  edge?: string | null;
}

export interface FrameData extends Record<string, unknown> {
  groupId: string;
  label: string;
  color: string;
  members: string[];
}

export interface CommentData extends Record<string, unknown> {
  commentId: string;
  text: string;
}

export type ProxusNode = Node<ProxusNodeData, "proxus">;
export type FrameNode = Node<FrameData, "frame">;
export type CommentNode = Node<CommentData, "comment">;
export type CanvasNode = ProxusNode | FrameNode | CommentNode;

export interface WireData extends Record<string, unknown> {
  kind?: string;
}
export type Wire = Edge<WireData>;

export const FRAME_PREFIX = "g:";
export const COMMENT_PREFIX = "c:";
export const NODE_WIDTH = 200;
export const NODE_HEIGHT = 64;
const FRAME_PAD = 28;
const FRAME_HEADER = 26;

export function isProxusNode(n: Node): n is ProxusNode {
  return n.type === "proxus";
}
export function isFrame(n: Node): n is FrameNode {
  return n.type === "frame";
}
export function isComment(n: Node): n is CommentNode {
  return n.type === "comment";
}

export function toCanvasNode(n: FlowNode): ProxusNode {
  return {
    id: n.id,
    type: "proxus",
    position: { x: n.position?.x ?? 0, y: n.position?.y ?? 0 },
    data: {
      type: n.type,
      typeVersion: n.type_version ?? 1,
      label: n.label ?? "",
      config: (n.config ?? {}) as Record<string, unknown>,
      edge: n.edge ?? null,
    },
  };
}

export function toWire(e: FlowEdge, kind?: string): Wire {
  return {
    id: e.id,
    source: e.source,
    target: e.target,
    sourceHandle: e.source_port ?? "out",
    targetHandle: e.target_port ?? "in",
    data: { kind },
    className: kind ? `wire-${kind}` : undefined,
  };
}

export function toCommentNode(c: FlowComment): CommentNode {
  return {
    id: COMMENT_PREFIX + c.id,
    type: "comment",
    position: { x: c.position?.x ?? 0, y: c.position?.y ?? 0 },
    data: { commentId: c.id, text: c.text ?? "" },
  };
}

export function toFrameNode(g: FlowGroup): FrameNode {
  return {
    id: FRAME_PREFIX + g.id,
    type: "frame",
    position: { x: 0, y: 0 },
    zIndex: -1,
    selectable: true,
    data: { groupId: g.id, label: g.label ?? "", color: g.color ?? "", members: [...(g.nodes ?? [])] },
  };
}

export interface Bounds {
  x: number;
  y: number;
  width: number;
  height: number;
}

export function nodeSize(n: Node): { width: number; height: number } {
  return {
    width: n.measured?.width ?? n.width ?? NODE_WIDTH,
    height: n.measured?.height ?? n.height ?? NODE_HEIGHT,
  };
}

export function boundsOf(nodes: Node[]): Bounds | null {
  if (nodes.length === 0) return null;
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (const n of nodes) {
    const { width, height } = nodeSize(n);
    x0 = Math.min(x0, n.position.x);
    y0 = Math.min(y0, n.position.y);
    x1 = Math.max(x1, n.position.x + width);
    y1 = Math.max(y1, n.position.y + height);
  }
  return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
}

/** Place every frame around its members (frames with no member present keep their place). */
export function layoutFrames(nodes: CanvasNode[]): CanvasNode[] {
  if (!nodes.some(isFrame)) return nodes;
  const byId = new Map<string, CanvasNode>();
  for (const n of nodes) byId.set(n.id, n);
  let changed = false;
  const out = nodes.map((n) => {
    if (!isFrame(n)) return n;
    const members = n.data.members.map((id) => byId.get(id)).filter((m): m is CanvasNode => !!m);
    const b = boundsOf(members);
    if (!b) return n;
    const position = { x: b.x - FRAME_PAD, y: b.y - FRAME_PAD - FRAME_HEADER };
    const width = b.width + 2 * FRAME_PAD;
    const height = b.height + 2 * FRAME_PAD + FRAME_HEADER;
    if (
      n.position.x === position.x &&
      n.position.y === position.y &&
      n.width === width &&
      n.height === height
    ) {
      return n;
    }
    changed = true;
    return { ...n, position, width, height, style: { ...n.style, width, height } };
  });
  return changed ? out : nodes;
}

export interface Graph {
  nodes: CanvasNode[];
  edges: Wire[];
}

/** Port kind of an output, looked up through a type→outputs function (the catalog). */
export type OutputKind = (nodeType: string, port: string) => string | undefined;

export function documentToGraph(doc: FlowDocument, outputKind: OutputKind = () => undefined): Graph {
  const typeOf = new Map<string, string>();
  for (const n of doc.nodes ?? []) typeOf.set(n.id, n.type);
  const frames = (doc.groups ?? []).map(toFrameNode);
  const nodes: CanvasNode[] = [
    ...frames,
    ...(doc.nodes ?? []).map(toCanvasNode),
    ...(doc.comments ?? []).map(toCommentNode),
  ];
  const edges = (doc.edges ?? []).map((e) => {
    const t = typeOf.get(e.source);
    return toWire(e, t ? outputKind(t, e.source_port ?? "out") : undefined);
  });
  return { nodes: layoutFrames(nodes), edges };
}

function round(v: number): number {
  return Math.round(v * 10) / 10;
}

function position(p: XYPosition): { x: number; y: number } {
  return { x: round(p.x), y: round(p.y) };
}

export function canvasToFlowNode(n: ProxusNode): FlowNode {
  const out: FlowNode = {
    id: n.id,
    type: n.data.type,
    type_version: n.data.typeVersion,
    label: n.data.label,
    position: position(n.position),
    config: n.data.config,
  };
  if (n.data.edge) out.edge = n.data.edge;
  return out;
}

export function wireToFlowEdge(e: Wire): FlowEdge {
  return {
    id: e.id,
    source: e.source,
    target: e.target,
    source_port: e.sourceHandle ?? "out",
    target_port: e.targetHandle ?? "in",
  };
}

export interface DocumentHeader {
  id: string;
  name: string;
  version: number;
  metadata?: FlowDocument["metadata"];
}

export function graphToDocument(header: DocumentHeader, graph: Graph): FlowDocument {
  const nodes: FlowNode[] = [];
  const groups: FlowGroup[] = [];
  const comments: FlowComment[] = [];
  const nodeIds = new Set<string>();
  for (const n of graph.nodes) {
    if (isProxusNode(n)) {
      nodes.push(canvasToFlowNode(n));
      nodeIds.add(n.id);
    }
  }
  for (const n of graph.nodes) {
    if (isFrame(n)) {
      const g: FlowGroup = { id: n.data.groupId, label: n.data.label, nodes: n.data.members.filter((m) => nodeIds.has(m)) };
      if (n.data.color) g.color = n.data.color;
      groups.push(g);
    } else if (isComment(n)) {
      comments.push({ id: n.data.commentId, text: n.data.text, position: position(n.position) });
    }
  }
  const doc: FlowDocument = {
    format: "proxus.flow",
    schema_version: 1,
    id: header.id,
    name: header.name,
    version: header.version,
    nodes,
    edges: graph.edges.map(wireToFlowEdge),
  };
  if (header.metadata) doc.metadata = header.metadata;
  if (groups.length) doc.groups = groups;
  if (comments.length) doc.comments = comments;
  return doc;
}

const ID_SAFE = /[^A-Za-z0-9_-]/g;

/** A readable, unused node id derived from the type: "transform.scale" → "scale", "scale_2", … */
export function newNodeId(nodeType: string, taken: (id: string) => boolean): string {
  const base =
    (nodeType.split(".").pop() || "node").replace(ID_SAFE, "_").slice(0, 48) || "node";
  if (!taken(base)) return base;
  for (let i = 2; ; i++) {
    const id = `${base}_${i}`;
    if (!taken(id)) return id;
  }
}

/** `base` if free, else `base_2`, `base_3`, … (a trailing `_N` of `base` is replaced). */
export function uniqueId(base: string, taken: (id: string) => boolean): string {
  if (!taken(base)) return base;
  const stem = base.replace(/_\d+$/, "").slice(0, 56) || "node";
  for (let i = 2; ; i++) {
    const id = `${stem}_${i}`;
    if (!taken(id)) return id;
  }
}

let counter = 0;
/** A short random id for wires, groups and comments. */
export function shortId(prefix: string): string {
  counter = (counter + 1) % 1296;
  const rnd = Math.floor(Math.random() * 36 ** 6)
    .toString(36)
    .padStart(6, "0");
  return `${prefix}${rnd}${counter.toString(36)}`;
}
