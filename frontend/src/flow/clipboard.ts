/**
 * Copy/paste as JSON text, so it works across flows, tabs and browsers (a flow file pastes too).
 * Pure: the editor puts the text on the system clipboard.
 */
import type { XYPosition } from "@xyflow/react";
import type { FlowComment, FlowEdge, FlowGroup, FlowNode } from "../api/types";
import {
  type CanvasNode,
  type Graph,
  type Wire,
  canvasToFlowNode,
  isComment,
  isFrame,
  isProxusNode,
  newNodeId,
  shortId,
  uniqueId,
  toCanvasNode,
  toCommentNode,
  toFrameNode,
  wireToFlowEdge,
  layoutFrames,
} from "./graph";

export const CLIPBOARD_FORMAT = "proxus.clipboard";

export interface ClipboardPayload {
  format: typeof CLIPBOARD_FORMAT;
  version: 1;
  nodes: FlowNode[];
  edges: FlowEdge[];
  groups: FlowGroup[];
  comments: FlowComment[];
}

export function copySelection(graph: Graph, selected: Set<string>): ClipboardPayload | null {
  const nodes = graph.nodes.filter((n) => selected.has(n.id));
  // A selected frame brings its members along.
  const memberIds = new Set<string>();
  for (const n of nodes) if (isFrame(n)) n.data.members.forEach((m) => memberIds.add(m));
  const proxus = graph.nodes.filter(isProxusNode).filter((n) => selected.has(n.id) || memberIds.has(n.id));
  const ids = new Set(proxus.map((n) => n.id));
  const comments = nodes.filter(isComment);
  const frames = nodes.filter(isFrame);
  if (!proxus.length && !comments.length) return null;
  return {
    format: CLIPBOARD_FORMAT,
    version: 1,
    nodes: proxus.map(canvasToFlowNode),
    edges: graph.edges.filter((e) => ids.has(e.source) && ids.has(e.target)).map(wireToFlowEdge),
    groups: frames.map((f) => ({ id: f.data.groupId, label: f.data.label, color: f.data.color, nodes: f.data.members.filter((m) => ids.has(m)) })),
    comments: comments.map((c) => ({ id: c.data.commentId, text: c.data.text, position: c.position })),
  };
}

/** Read clipboard text: our own payload, or a flow document (exported file). */
export function parseClipboard(text: string): ClipboardPayload | null {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  if (!raw || typeof raw !== "object") return null;
  const obj = raw as Record<string, unknown>;
  if (obj.format !== CLIPBOARD_FORMAT && obj.format !== "proxus.flow") return null;
  const arr = <T>(v: unknown): T[] => (Array.isArray(v) ? (v as T[]) : []);
  const nodes = arr<FlowNode>(obj.nodes).filter(
    (n) => n && typeof n === "object" && typeof n.id === "string" && typeof n.type === "string",
  );
  const edges = arr<FlowEdge>(obj.edges).filter(
    (e) => e && typeof e.source === "string" && typeof e.target === "string",
  );
  return {
    format: CLIPBOARD_FORMAT,
    version: 1,
    nodes,
    edges,
    groups: arr<FlowGroup>(obj.groups),
    comments: arr<FlowComment>(obj.comments).filter((c) => c && typeof c === "object"),
  };
}

/**
 * New canvas elements for a paste: fresh ids (wires re-pointed), positioned so the pasted
 * block's top-left corner lands on `anchor`.
 */
export function pastePayload(
  payload: ClipboardPayload,
  taken: (id: string) => boolean,
  anchor: XYPosition,
): { nodes: CanvasNode[]; edges: Wire[] } {
  const xs = [...payload.nodes.map((n) => n.position?.x ?? 0), ...payload.comments.map((c) => c.position?.x ?? 0)];
  const ys = [...payload.nodes.map((n) => n.position?.y ?? 0), ...payload.comments.map((c) => c.position?.y ?? 0)];
  const minX = xs.length ? Math.min(...xs) : 0;
  const minY = ys.length ? Math.min(...ys) : 0;
  const dx = anchor.x - minX;
  const dy = anchor.y - minY;
  const mapping = new Map<string, string>();
  const used = new Set<string>();
  const isTaken = (id: string) => taken(id) || used.has(id);
  const nodes: CanvasNode[] = [];
  for (const n of payload.nodes) {
    const id = /^[A-Za-z0-9_-]{1,64}$/.test(n.id) ? uniqueId(n.id, isTaken) : newNodeId(n.type, isTaken);
    used.add(id);
    mapping.set(n.id, id);
    const c = toCanvasNode({ ...n, id, position: { x: (n.position?.x ?? 0) + dx, y: (n.position?.y ?? 0) + dy } });
    nodes.push({ ...c, data: { ...c.data, config: structuredClone(c.data.config) }, selected: true });
  }
  const edges: Wire[] = [];
  for (const e of payload.edges) {
    const source = mapping.get(e.source);
    const target = mapping.get(e.target);
    if (!source || !target) continue;
    edges.push({
      id: shortId("w_"),
      source,
      target,
      sourceHandle: e.source_port ?? "out",
      targetHandle: e.target_port ?? "in",
      data: {},
    });
  }
  for (const g of payload.groups) {
    const members = (g.nodes ?? []).map((m) => mapping.get(m)).filter((m): m is string => !!m);
    if (!members.length) continue;
    nodes.unshift(toFrameNode({ ...g, id: shortId("group_"), nodes: members }));
  }
  for (const c of payload.comments) {
    nodes.push({
      ...toCommentNode({ ...c, id: shortId("note_"), position: { x: (c.position?.x ?? 0) + dx, y: (c.position?.y ?? 0) + dy } }),
      selected: true,
    });
  }
  return { nodes: layoutFrames(nodes), edges };
}
