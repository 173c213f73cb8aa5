/**
 * Live debug: the messages the flow's debug nodes publish while it runs, streamed from the Hub
 * (Server-Sent Events, GET /api/live?topics=debug:<edge>/<flow>/<node>).
 */
import { Bug, Eraser, Pause, Play, X } from "lucide-react";
import { useEffect, useMemo, useRef, useState } from "react";
import { api, unwrap } from "../api/client";
import { isProxusNode } from "../flow/graph";
import { useEditor } from "./store";

const KEEP = 300;

interface DebugPoint {
  ts?: number;
  series?: string;
  value?: unknown;
  quality?: string;
}

export interface DebugMessage {
  edge: string;
  flow: string;
  node: string;
  message: {
    label?: string;
    kind?: string;
    count?: number;
    at?: number;
    points?: DebugPoint[];
    [key: string]: unknown;
  };
}

/** Topics for the debug nodes of a flow, given which edges run which steps. Pure. */
export function debugTopics(flowId: string, nodeEdges: Map<string, string[]>): string[] {
  const topics: string[] = [];
  for (const [node, edges] of nodeEdges) for (const edge of edges) topics.push(`debug:${edge}/${flowId}/${node}`);
  return topics.sort();
}

function formatValue(v: unknown): string {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(6).replace(/\.?0+$/, "");
  if (typeof v === "string") return JSON.stringify(v);
  return String(v);
}

function timeOf(ns: number | undefined): string {
  if (!ns) return "";
  const d = new Date(ns / 1e6);
  return `${d.toLocaleTimeString()}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

/**
 * Whether to show a message: a debug sink publishes its own message, and the live tap of the
 * same node (which subscribing turns on) repeats its input with a `port`: show the sink's only.
 */
export function keepMessage(msg: DebugMessage, sinks: Set<string>): boolean {
  return !(sinks.has(msg.node) && typeof msg.message.port === "string");
}

export function DebugPanel({ flowId, version, onClose }: { flowId: string; version: number; onClose: () => void }) {
  const sinkIds = useEditor((s) =>
    s.nodes
      .filter(isProxusNode)
      .filter((n) => n.data.type === "sink.debug")
      .map((n) => n.id)
      .join(","),
  );
  const watched = useEditor((s) => s.watched.join(","));
  const debugNodes = [...new Set([...(sinkIds ? sinkIds.split(",") : []), ...(watched ? watched.split(",") : [])])].join(",");
  const sinksRef = useRef(new Set<string>());
  sinksRef.current = new Set(sinkIds ? sinkIds.split(",") : []);
  const [nodeEdges, setNodeEdges] = useState<Map<string, string[]> | null>(null);
  const [messages, setMessages] = useState<DebugMessage[]>([]);
  const [paused, setPaused] = useState(false);
  const [filter, setFilter] = useState("");
  const [state, setState] = useState<"idle" | "connecting" | "open" | "error">("idle");
  const pausedRef = useRef(paused);
  pausedRef.current = paused;

  // Which edges run each debug node: from the compiled plans of the saved version.
  useEffect(() => {
    let live = true;
    const wanted = new Set(debugNodes ? debugNodes.split(",") : []);
    if (!wanted.size) {
      setNodeEdges(new Map());
      return;
    }
    unwrap(
      api.POST("/api/flows/{flow_id}/compile", {
        params: { path: { flow_id: flowId }, query: { include_plans: true } },
        body: { version },
      }),
    ).then(
      (report) => {
        const map = new Map<string, string[]>();
        for (const p of report.plans) {
          for (const step of p.plan?.steps ?? []) {
            if (wanted.has(step.node_id)) map.set(step.node_id, [...(map.get(step.node_id) ?? []), p.edge]);
          }
        }
        if (live) setNodeEdges(map);
      },
      () => live && setNodeEdges(new Map()),
    );
    return () => {
      live = false;
    };
  }, [flowId, version, debugNodes]);

  const topics = useMemo(() => (nodeEdges ? debugTopics(flowId, nodeEdges) : []), [flowId, nodeEdges]);

  useEffect(() => {
    if (!topics.length) {
      setState("idle");
      return;
    }
    setState("connecting");
    const source = new EventSource(`/api/live?topics=${encodeURIComponent(topics.join(","))}`, { withCredentials: true });
    source.onopen = () => setState("open");
    source.onerror = () => setState(source.readyState === EventSource.CLOSED ? "error" : "connecting");
    source.addEventListener("debug", (e) => {
      if (pausedRef.current) return;
      try {
        const msg = JSON.parse((e as MessageEvent<string>).data) as DebugMessage;
        if (!keepMessage(msg, sinksRef.current)) return;
        setMessages((list) => [msg, ...list].slice(0, KEEP));
      } catch {
        /* not JSON: ignore */
      }
    });
    return () => source.close();
  }, [topics]);

  const shown = filter ? messages.filter((m) => m.node === filter) : messages;

  return (
    <aside className="side-panel debug-panel" aria-label="Live debug" data-testid="debug-panel">
      <div className="side-head">
        <Bug size={16} />
        <span>Debug</span>
        <span className={`live-dot live-${state}`} title={state} />
        <button type="button" className="icon-btn" onClick={onClose} aria-label="Close debug">
          <X size={16} />
        </button>
      </div>
      <div className="debug-tools">
        <select className="input select" value={filter} onChange={(e) => setFilter(e.target.value)} aria-label="Show messages of">
          <option value="">all debug nodes</option>
          {(debugNodes ? debugNodes.split(",") : []).map((id) => (
            <option key={id} value={id}>
              {id}
            </option>
          ))}
        </select>
        <button type="button" className="icon-btn" onClick={() => setPaused(!paused)} title={paused ? "Resume" : "Pause"}>
          {paused ? <Play size={15} /> : <Pause size={15} />}
        </button>
        <button type="button" className="icon-btn" onClick={() => setMessages([])} title="Clear">
          <Eraser size={15} />
        </button>
      </div>
      <div className="side-body">
        {!debugNodes ? (
          <p className="muted">
            Add a Debug node and wire it where you want to look at the data, or select any node and choose “Watch in
            debug”.
          </p>
        ) : null}
        {debugNodes && nodeEdges && topics.length === 0 ? (
          <p className="muted">The saved version does not compile, or its debug nodes are fed by no device yet.</p>
        ) : null}
        {topics.length && !messages.length ? (
          <p className="muted">Waiting for messages… (the flow has to be deployed and running)</p>
        ) : null}
        <ol className="debug-list">
          {shown.map((m, i) => (
            <li key={`${m.message.at ?? 0}-${i}`} className="debug-msg">
              <div className="debug-meta">
                <span className="mono">{timeOf(m.message.at)}</span>
                <b>{m.message.label || m.node}</b>
                {typeof m.message.port === "string" ? <span className="pill info">{m.message.port}</span> : null}
                <span className="muted">
                  {m.message.kind ?? ""} · {m.message.count ?? 0} · edge {m.edge}
                </span>
              </div>
              <table className="debug-points">
                <tbody>
                  {(m.message.points ?? []).slice(0, 20).map((p, j) => (
                    <tr key={j} className={p.quality && p.quality !== "good" ? "q-bad" : ""}>
                      <td className="mono">{p.series}</td>
                      <td className="mono num">{formatValue(p.value)}</td>
                      <td className="muted small">{p.quality !== "good" ? p.quality : ""}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {(m.message.points?.length ?? 0) > 20 ? <div className="muted small">… {m.message.points!.length - 20} more</div> : null}
            </li>
          ))}
        </ol>
      </div>
    </aside>
  );
}
