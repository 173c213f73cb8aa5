/** Which wires the editor allows: an output's kind must be one its target input accepts. Pure. */
import type { CatalogEntry } from "../catalog/types";

export interface ConnectionLike {
  source: string | null;
  target: string | null;
  sourceHandle?: string | null;
  targetHandle?: string | null;
}

export interface WireLike {
  source: string;
  target: string;
  sourceHandle?: string | null;
  targetHandle?: string | null;
}

export type SpecOf = (nodeId: string) => CatalogEntry | undefined;

export type ConnectionVerdict = { ok: true; kind: string } | { ok: false; reason: string };

export function checkConnection(conn: ConnectionLike, specOf: SpecOf, wires: Iterable<WireLike> = []): ConnectionVerdict {
  if (!conn.source || !conn.target) return { ok: false, reason: "incomplete wire" };
  if (conn.source === conn.target) return { ok: false, reason: "a node cannot feed itself" };
  const from = specOf(conn.source);
  const to = specOf(conn.target);
  if (!from || !to) return { ok: false, reason: "unknown node" };
  const output = from.outputs.find((o) => o.name === (conn.sourceHandle ?? from.outputs[0]?.name));
  if (!output) return { ok: false, reason: `${from.title} has no output ${conn.sourceHandle ?? ""}`.trim() };
  const input = to.inputs.find((i) => i.name === (conn.targetHandle ?? to.inputs[0]?.name));
  if (!input) return { ok: false, reason: `${to.title} has no input ${conn.targetHandle ?? ""}`.trim() };
  if (!input.accepts.includes(output.kind)) {
    return { ok: false, reason: `${to.title} accepts ${input.accepts.join(" or ")}, not ${output.kind}` };
  }
  for (const w of wires) {
    if (
      w.source === conn.source &&
      w.target === conn.target &&
      (w.sourceHandle ?? "out") === output.name &&
      (w.targetHandle ?? "in") === input.name
    ) {
      return { ok: false, reason: "already connected" };
    }
  }
  return { ok: true, kind: output.kind };
}

/** The first output of `from` some input of `to` accepts, for auto-wiring a quick-added node. */
export function firstCompatible(from: CatalogEntry, to: CatalogEntry): { output: string; input: string } | null {
  for (const output of from.outputs) {
    for (const input of to.inputs) {
      if (input.accepts.includes(output.kind)) return { output: output.name, input: input.name };
    }
  }
  return null;
}
