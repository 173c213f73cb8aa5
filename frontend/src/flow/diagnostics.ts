/** Diagnostics from the Hub's compiler, sorted onto nodes, wires and config fields. Pure. */
import type { Diagnostic } from "../api/types";

export interface DiagnosticIndex {
  byNode: Record<string, Diagnostic[]>;
  byEdge: Record<string, Diagnostic[]>;
  general: Diagnostic[];
  errors: number;
  warnings: number;
}

export const EMPTY_INDEX: DiagnosticIndex = { byNode: {}, byEdge: {}, general: [], errors: 0, warnings: 0 };

export function indexDiagnostics(diagnostics: Diagnostic[]): DiagnosticIndex {
  const byNode: Record<string, Diagnostic[]> = {};
  const byEdge: Record<string, Diagnostic[]> = {};
  const general: Diagnostic[] = [];
  let errors = 0;
  let warnings = 0;
  for (const d of diagnostics) {
    if (d.severity === "error") errors++;
    else warnings++;
    if (d.edge_id) (byEdge[d.edge_id] ??= []).push(d);
    if (d.node_id) (byNode[d.node_id] ??= []).push(d);
    if (!d.node_id && !d.edge_id) general.push(d);
  }
  return { byNode, byEdge, general, errors, warnings };
}

const NODE_CONFIG = /^\$\.nodes\[\d+\]\.config(?=$|[.[])/;
const NODE_FIELD = /^\$\.nodes\[\d+\]\.([A-Za-z_]+)/;

/** `$.nodes[3].config.registers[0].address` → `$.registers[0].address` (null outside a config). */
export function configPath(path: string | undefined): string | null {
  if (!path) return null;
  const m = NODE_CONFIG.exec(path);
  if (!m) return null;
  const rest = path.slice(m[0].length);
  return "$" + rest;
}

/** The node-level field a diagnostic is about (`label`, `type`, `edge`, …), or null. */
export function nodeField(path: string | undefined): string | null {
  if (!path) return null;
  const m = NODE_FIELD.exec(path);
  return m && m[1] !== "config" ? m[1]! : null;
}

/** Worst severity in a list, for the marker colour. */
export function worst(diagnostics: Diagnostic[] | undefined): "error" | "warning" | null {
  if (!diagnostics?.length) return null;
  return diagnostics.some((d) => d.severity === "error") ? "error" : "warning";
}

/** Diagnostics on a config field or anywhere below it. */
export function diagnosticsAt(diagnostics: Diagnostic[] | undefined, fieldPath: string, exact = false): Diagnostic[] {
  if (!diagnostics) return [];
  return diagnostics.filter((d) => {
    const p = configPath(d.path);
    if (p == null) return false;
    if (p === fieldPath) return true;
    return !exact && (p.startsWith(fieldPath + ".") || p.startsWith(fieldPath + "["));
  });
}

/** An edge's refusal of a deployed plan, as markers: on the node it names ("step <id>: ..."), else general. */
export function deployFailureDiagnostics(edges: { edge: string; state: string; error?: string | null }[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const e of edges) {
    if (e.state !== "failed" || !e.error) continue;
    const m = /^step ([A-Za-z0-9_-]+): ([\s\S]*)$/.exec(e.error);
    out.push({
      severity: "error",
      code: "deploy_failed",
      message: `edge ${e.edge} did not apply the plan: ${m ? m[2] : e.error}`,
      path: "$",
      node_id: m ? m[1] : null,
      hint: "fix the node (or the edge) and deploy again",
    } as Diagnostic);
  }
  return out;
}

/** Every diagnostic of an index, once each (a wire's diagnostic may also be filed under its node). */
export function allDiagnostics(index: DiagnosticIndex): Diagnostic[] {
  const seen = new Set<Diagnostic>();
  for (const list of [...Object.values(index.byNode), ...Object.values(index.byEdge), index.general]) {
    for (const d of list) seen.add(d);
  }
  return [...seen];
}
