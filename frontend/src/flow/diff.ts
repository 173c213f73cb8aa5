/**
 * Node-level difference between two flow documents, for highlighting on the canvas.
 * Mirrors the Hub's diff (backend/flows/diff.py): wires are matched by endpoints and ports.
 */
import type { FlowDocument, FlowEdge, FlowNode } from "../api/types";

export type NodeField = "type" | "type_version" | "label" | "config" | "position" | "edge";

export interface DocumentDiff {
  added: FlowNode[];
  removed: FlowNode[];
  changed: { node: FlowNode; fields: NodeField[] }[];
  addedWires: FlowEdge[];
  removedWires: FlowEdge[];
  identical: boolean;
}

export type Mark = "added" | "removed" | "changed";

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => deepEqual(v, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ao), ...Object.keys(bo)]);
  for (const k of keys) if (!deepEqual(ao[k], bo[k])) return false;
  return true;
}

function wireKey(e: FlowEdge): string {
  return `${e.source}\u0000${e.source_port ?? "out"}\u0000${e.target}\u0000${e.target_port ?? "in"}`;
}

export function diffDocuments(before: FlowDocument, after: FlowDocument): DocumentDiff {
  const old = new Map((before.nodes ?? []).map((n) => [n.id, n]));
  const now = new Map((after.nodes ?? []).map((n) => [n.id, n]));
  const added: FlowNode[] = [];
  const removed: FlowNode[] = [];
  const changed: { node: FlowNode; fields: NodeField[] }[] = [];
  for (const [id, n] of now) {
    const o = old.get(id);
    if (!o) {
      added.push(n);
      continue;
    }
    const fields: NodeField[] = [];
    if (o.type !== n.type) fields.push("type");
    if ((o.type_version ?? 1) !== (n.type_version ?? 1)) fields.push("type_version");
    if ((o.label ?? "") !== (n.label ?? "")) fields.push("label");
    if (!deepEqual(o.config ?? {}, n.config ?? {})) fields.push("config");
    if ((o.position?.x ?? 0) !== (n.position?.x ?? 0) || (o.position?.y ?? 0) !== (n.position?.y ?? 0)) {
      fields.push("position");
    }
    if ((o.edge ?? null) !== (n.edge ?? null)) fields.push("edge");
    if (fields.length) changed.push({ node: n, fields });
  }
  for (const [id, o] of old) if (!now.has(id)) removed.push(o);
  const oldWires = new Map((before.edges ?? []).map((e) => [wireKey(e), e]));
  const newWires = new Map((after.edges ?? []).map((e) => [wireKey(e), e]));
  const addedWires = [...newWires].filter(([k]) => !oldWires.has(k)).map(([, e]) => e);
  const removedWires = [...oldWires].filter(([k]) => !newWires.has(k)).map(([, e]) => e);
  return {
    added,
    removed,
    changed,
    addedWires,
    removedWires,
    identical: !added.length && !removed.length && !changed.length && !addedWires.length && !removedWires.length,
  };
}

/** Marks for the canvas: a moved-only node is not worth highlighting as changed. */
export function diffMarks(diff: DocumentDiff): Record<string, Mark> {
  const marks: Record<string, Mark> = {};
  for (const n of diff.added) marks[n.id] = "added";
  for (const n of diff.removed) marks[n.id] = "removed";
  for (const c of diff.changed) if (c.fields.some((f) => f !== "position")) marks[c.node.id] = "changed";
  return marks;
}

export function wireMarks(diff: DocumentDiff): Record<string, Mark> {
  const marks: Record<string, Mark> = {};
  for (const e of diff.addedWires) marks[e.id] = "added";
  for (const e of diff.removedWires) marks[e.id] = "removed";
  return marks;
}
