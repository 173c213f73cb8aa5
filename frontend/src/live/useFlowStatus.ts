/**
 * Node status badges for a deployed flow: polls the edges' live status (GET /api/edges, fed by
 * heartbeats) and turns each node's counters into a rate and a health colour.
 */
import { useEffect } from "react";
import { api, unwrap } from "../api/client";
import type { EdgeGateway } from "../api/types";
import { type NodeStatus, useLiveStatusStore } from "./status";

const POLL_MS = 5000;

interface NodeMetrics {
  points_in?: number;
  points_out?: number;
  errors?: number;
  health?: string;
  message?: string;
  last_error?: string;
}

function rate(now: number, before: number | undefined, seconds: number): number | null {
  if (before === undefined || seconds <= 0 || now < before) return null;
  return (now - before) / seconds;
}

function formatRate(r: number | null): string {
  if (r === null) return "";
  if (r >= 1000) return `${(r / 1000).toFixed(1)}k/s`;
  if (r >= 10) return `${Math.round(r)}/s`;
  return `${r.toFixed(1)}/s`;
}

/** Per-node badges from the edges' status of one flow (pure; `previous` gives rates). */
export function statusFromEdges(
  edges: EdgeGateway[],
  flowId: string,
  previous: Map<string, { at: number; out: number }>,
  at: number,
): Record<string, NodeStatus> {
  const out: Record<string, NodeStatus> = {};
  for (const edge of edges) {
    const flow = edge.status?.flows?.find((f) => f.flow_id === flowId);
    if (!flow) continue;
    for (const [nodeId, raw] of Object.entries(flow.nodes ?? {})) {
      const m = (raw ?? {}) as NodeMetrics;
      const prev = previous.get(nodeId);
      const count = m.points_out ?? m.points_in ?? 0;
      const r = prev ? rate(count, prev.out, (at - prev.at) / 1000) : null;
      previous.set(nodeId, { at, out: count });
      const health = !edge.status?.online ? "idle" : m.health === "error" ? "error" : m.health === "warning" ? "warn" : "ok";
      const text = !edge.status?.online ? "offline" : m.health === "error" ? "error" : formatRate(r) || `${count}`;
      out[nodeId] = {
        state: health,
        text,
        title: [
          `edge ${edge.id}${edge.status?.online ? "" : " (offline)"}`,
          `in ${m.points_in ?? 0} · out ${m.points_out ?? 0} · errors ${m.errors ?? 0}`,
          m.message || "",
          m.last_error ? `last error: ${m.last_error}` : "",
        ]
          .filter(Boolean)
          .join("\n"),
      };
    }
  }
  return out;
}

export function useFlowStatus(flowId: string, enabled: boolean): void {
  useEffect(() => {
    const store = useLiveStatusStore.getState();
    if (!enabled) {
      store.clear();
      return;
    }
    const previous = new Map<string, { at: number; out: number }>();
    let timer: number | undefined;
    let live = true;
    const poll = async () => {
      try {
        const edges = await unwrap(api.GET("/api/edges"));
        if (live) useLiveStatusStore.getState().set(statusFromEdges(edges, flowId, previous, Date.now()));
      } catch {
        /* keep the last badges */
      }
      if (live) timer = window.setTimeout(poll, POLL_MS);
    };
    void poll();
    return () => {
      live = false;
      window.clearTimeout(timer);
      useLiveStatusStore.getState().clear();
    };
  }, [flowId, enabled]);
}
