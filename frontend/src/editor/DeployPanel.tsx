/**
 * Deploy: compile the saved version (plans per edge, or the problems), send it, then follow
 * each edge until it reports the plan applied or failed.
 */
import { CircleAlert, CircleCheck, Loader, Rocket, X } from "lucide-react";
import { useEffect, useState } from "react";
import { ApiError, api, errorMessage, unwrap } from "../api/client";
import { allDiagnostics, deployFailureDiagnostics } from "../flow/diagnostics";
import type { CompileReport, Deployment, Diagnostic } from "../api/types";
import { dateTime } from "../ui/format";
import { toast } from "../util/toast";
import { useEditor, useEditorStore } from "./store";

const POLL_MS = 1500;
const POLL_LIMIT = 80;

function StateIcon({ state }: { state: string }) {
  if (state === "applied" || state === "removed") return <CircleCheck size={15} className="ok" />;
  if (state === "failed") return <CircleAlert size={15} className="bad" />;
  if (state === "pending") return <Loader size={15} className="spin" />;
  return <span className="muted small">{state}</span>;
}

export function DeployPanel({
  flowId,
  deployedVersion,
  onClose,
  onDeployed,
}: {
  flowId: string;
  deployedVersion: number | null;
  onClose: () => void;
  onDeployed: (d: Deployment) => void;
}) {
  const store = useEditorStore();
  const version = useEditor((s) => s.baseVersion);
  const dirty = useEditor((s) => s.dirty);
  const [report, setReport] = useState<CompileReport | null>(null);
  const [message, setMessage] = useState("");
  const [deployment, setDeployment] = useState<Deployment | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    setReport(null);
    unwrap(api.POST("/api/flows/{flow_id}/compile", { params: { path: { flow_id: flowId } }, body: { version } })).then(
      (r) => {
        if (!live) return;
        setReport(r);
        if (!r.ok) store.getState().setDiagnostics(r.diagnostics, store.getState().revision);
      },
      (e: unknown) => live && setError(errorMessage(e)),
    );
    return () => {
      live = false;
    };
  }, [flowId, version, store]);

  // Follow the deployment until every edge has answered.
  useEffect(() => {
    if (!deployment || deployment.state !== "pending") return;
    let tries = 0;
    let timer: number | undefined;
    let live = true;
    const poll = async () => {
      tries++;
      try {
        const d = await unwrap(api.GET("/api/deployments/{deployment_id}", { params: { path: { deployment_id: deployment.id } } }));
        if (!live) return;
        setDeployment(d);
        if (d.state !== "pending") {
          onDeployed(d);
          if (d.state === "applied") toast.success(`Version ${d.version} runs on ${d.edges.length} edge(s)`);
          else if (d.state === "removed") toast.success(`The flow stopped on ${d.edges.length} edge(s)`);
          else if (d.state === "failed") {
            toast.error(`Deployment failed: ${d.edges.find((e) => e.error)?.error ?? "see the edges"}`);
            // Put the edge's answer on the node it names, where the user will look for it.
            const st = store.getState();
            st.setDiagnostics([...allDiagnostics(st.diagnostics), ...deployFailureDiagnostics(d.edges)], st.diagnosticsRevision);
          }
          return;
        }
      } catch {
        /* retry */
      }
      if (live && tries < POLL_LIMIT) timer = window.setTimeout(poll, POLL_MS);
    };
    timer = window.setTimeout(poll, POLL_MS);
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
  }, [deployment, onDeployed]);

  const deploy = async () => {
    setBusy(true);
    setError(null);
    try {
      const d = await unwrap(
        api.POST("/api/flows/{flow_id}/deploy", { params: { path: { flow_id: flowId } }, body: { version, message } }),
      );
      setDeployment(d);
      if (d.state !== "pending") onDeployed(d);
    } catch (e) {
      if (e instanceof ApiError && Array.isArray(e.body.extra?.diagnostics)) {
        store.getState().setDiagnostics(e.body.extra.diagnostics as Diagnostic[], store.getState().revision);
      }
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  const undeploy = async () => {
    if (!window.confirm("Stop this flow on every edge?")) return;
    setBusy(true);
    setError(null);
    try {
      const d = await unwrap(api.POST("/api/flows/{flow_id}/undeploy", { params: { path: { flow_id: flowId } }, body: { message } }));
      setDeployment(d);
      if (d.state !== "pending") onDeployed(d);
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <aside className="side-panel deploy" aria-label="Deploy" data-testid="deploy-panel">
      <div className="side-head">
        <Rocket size={16} />
        <span>Deploy version {version}</span>
        <button type="button" className="icon-btn" onClick={onClose} aria-label="Close deploy">
          <X size={16} />
        </button>
      </div>
      <div className="side-body">
        {dirty ? <div className="notice warn">You have unsaved changes: the deploy sends the saved version {version}.</div> : null}
        {deployedVersion ? (
          <div className="row-between">
            <span className="muted">Running now: version {deployedVersion}.</span>
            <button type="button" className="btn small danger" disabled={busy} onClick={undeploy} data-testid="undeploy">
              Undeploy
            </button>
          </div>
        ) : (
          <p className="muted">Not deployed yet.</p>
        )}
        {!report && !error ? <p className="muted">Compiling…</p> : null}
        {report ? (
          report.ok ? (
            <>
              <div className="field-label">Plans</div>
              <ul className="plain-list">
                {report.plans.map((p) => (
                  <li key={p.edge}>
                    edge <b>{p.edge}</b>: {p.steps} steps <span className="muted mono small">{p.hash.slice(0, 10)}</span>
                  </li>
                ))}
              </ul>
            </>
          ) : (
            <div className="notice bad">
              The flow does not compile ({report.diagnostics.filter((d) => d.severity === "error").length} errors): fix
              the marked nodes, save, and deploy again.
            </div>
          )
        ) : null}
        {error ? <div className="field-error">{error}</div> : null}
        <label className="field-label" htmlFor="deploy-message">
          Note (optional)
        </label>
        <input id="deploy-message" className="input" value={message} onChange={(e) => setMessage(e.target.value)} maxLength={2000} />
        <button
          type="button"
          className="btn primary"
          disabled={busy || !report?.ok || deployment?.state === "pending"}
          onClick={deploy}
          data-testid="deploy-confirm"
        >
          <Rocket size={15} /> {busy ? "Sending…" : `Deploy version ${version}`}
        </button>
        {deployment ? (
          <div className="deployment" data-testid="deployment-status">
            <div className="field-label">
              Deployment #{deployment.id}: {deployment.state}
            </div>
            <div className="muted small">
              {deployment.by} · {dateTime(deployment.at)}
            </div>
            <ul className="plain-list">
              {deployment.edges.map((e) => (
                <li key={e.edge} className="edge-state">
                  <StateIcon state={e.state} /> edge <b>{e.edge}</b>: {e.state}
                  {e.error ? <div className="field-error">{e.error}</div> : null}
                </li>
              ))}
            </ul>
          </div>
        ) : null}
      </div>
    </aside>
  );
}
