/** The flows list: open, create, delete, import a file, start from a template. */
import { FileUp, LayoutTemplate, Plus, Search, Trash2 } from "lucide-react";
import { useCallback, useEffect, useMemo, useState } from "react";
import { api, errorMessage, unwrap } from "../api/client";
import type { FlowSummary } from "../api/types";
import { flowPath, navigate } from "../app/router";
import { useCan } from "../app/session";
import { Modal } from "../ui/Modal";
import { timeAgo, dateTime } from "../ui/format";
import { toast } from "../util/toast";
import { ImportDialog } from "./ImportDialog";
import { TemplatesDialog } from "./TemplatesDialog";

function NewFlowDialog({ onClose }: { onClose: () => void }) {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const create = async () => {
    if (!name.trim()) return;
    setBusy(true);
    try {
      const flow = await unwrap(api.POST("/api/flows", { body: { name: name.trim(), description } }));
      navigate(`/flows/${flow.id}`);
    } catch (err) {
      setError(errorMessage(err));
      setBusy(false);
    }
  };
  return (
    <Modal
      title="New flow"
      onClose={onClose}
      testId="new-flow-dialog"
      footer={
        <>
          <button type="button" className="btn ghost" onClick={onClose}>
            Cancel
          </button>
          <button type="button" className="btn primary" disabled={busy || !name.trim()} onClick={create} data-testid="create-flow">
            Create
          </button>
        </>
      }
    >
      <div className="field">
        <label className="field-label" htmlFor="flow-name">
          Name
        </label>
        <input
          id="flow-name"
          className="input"
          value={name}
          maxLength={200}
          autoFocus
          placeholder="e.g. Line 3 energy"
          onChange={(e) => setName(e.target.value)}
          onKeyDown={(e) => e.key === "Enter" && void create()}
        />
      </div>
      <div className="field">
        <label className="field-label" htmlFor="flow-desc">
          Description
        </label>
        <textarea id="flow-desc" className="input" rows={2} value={description} onChange={(e) => setDescription(e.target.value)} />
      </div>
      {error ? <p className="field-error">{error}</p> : null}
    </Modal>
  );
}

export function FlowsPage() {
  const editable = useCan("editor");
  const [flows, setFlows] = useState<FlowSummary[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [query, setQuery] = useState("");
  const [dialog, setDialog] = useState<"new" | "import" | "templates" | null>(null);

  const load = useCallback(async () => {
    try {
      setFlows(await unwrap(api.GET("/api/flows", { params: { query: { limit: 1000 } } })));
      setError(null);
    } catch (err) {
      setError(errorMessage(err));
    }
  }, []);

  useEffect(() => {
    void load();
  }, [load]);

  const shown = useMemo(() => {
    const q = query.trim().toLowerCase();
    return (flows ?? []).filter((f) => !q || f.name.toLowerCase().includes(q) || f.id.toLowerCase().includes(q));
  }, [flows, query]);

  const remove = async (f: FlowSummary) => {
    if (!window.confirm(`Delete the flow “${f.name}” and all its versions?`)) return;
    try {
      await unwrap(api.DELETE("/api/flows/{flow_id}", { params: { path: { flow_id: f.id } } }));
      toast.success(`Deleted ${f.name}`);
      void load();
    } catch (err) {
      toast.error(errorMessage(err));
    }
  };

  return (
    <div className="page flows-page" data-testid="flows-page">
      <div className="page-head">
        <h1>Flows</h1>
        <div className="search">
          <Search size={15} aria-hidden="true" />
          <input type="search" placeholder="Search flows" value={query} onChange={(e) => setQuery(e.target.value)} aria-label="Search flows" />
        </div>
        <div className="spacer" />
        {editable ? (
          <>
            <button type="button" className="btn" onClick={() => setDialog("templates")} data-testid="from-template">
              <LayoutTemplate size={15} /> From template
            </button>
            <button type="button" className="btn" onClick={() => setDialog("import")} data-testid="import">
              <FileUp size={15} /> Import
            </button>
            <button type="button" className="btn primary" onClick={() => setDialog("new")} data-testid="new-flow">
              <Plus size={15} /> New flow
            </button>
          </>
        ) : null}
      </div>
      {error ? <p className="field-error">{error}</p> : null}
      <table className="list-table">
        <thead>
          <tr>
            <th>Name</th>
            <th>Nodes</th>
            <th>Version</th>
            <th>Deployed</th>
            <th>Last change</th>
            {editable ? <th /> : null}
          </tr>
        </thead>
        <tbody>
          {shown.map((f) => (
            <tr key={f.id} className="clickable" onClick={() => navigate(`/flows/${f.id}`)} data-testid={`flow-row-${f.id}`}>
              <td>
                <a href={flowPath(f.id)} onClick={(e) => e.stopPropagation()} className="flow-link">
                  {f.name}
                </a>
                <div className="muted small mono">{f.id}</div>
              </td>
              <td>
                {f.node_count} <span className="muted small">/ {f.wire_count} wires</span>
              </td>
              <td>v{f.latest_version}</td>
              <td>
                {f.deployed_version ? (
                  <span className={`pill ${f.deployed_version === f.latest_version ? "ok" : "warn"}`} title={dateTime(f.deployed_at)}>
                    v{f.deployed_version}
                  </span>
                ) : (
                  <span className="muted">—</span>
                )}
              </td>
              <td title={dateTime(f.updated_at)}>
                {timeAgo(f.updated_at)} <span className="muted small">by {f.updated_by}</span>
              </td>
              {editable ? (
                <td className="row-actions">
                  <button
                    type="button"
                    className="icon-btn danger"
                    title="Delete"
                    aria-label={`Delete ${f.name}`}
                    onClick={(e) => {
                      e.stopPropagation();
                      void remove(f);
                    }}
                  >
                    <Trash2 size={15} />
                  </button>
                </td>
              ) : null}
            </tr>
          ))}
          {flows && shown.length === 0 ? (
            <tr>
              <td colSpan={6} className="empty">
                {flows.length === 0 ? (editable ? "No flows yet: create one, import a file or start from a template." : "No flows yet.") : "No flow matches."}
              </td>
            </tr>
          ) : null}
          {!flows && !error ? (
            <tr>
              <td colSpan={6} className="empty muted">
                Loading…
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>
      {dialog === "new" ? <NewFlowDialog onClose={() => setDialog(null)} /> : null}
      {dialog === "import" ? (
        <ImportDialog
          onClose={() => setDialog(null)}
          onImported={(id) => {
            toast.success(`Imported ${id}`);
            navigate(`/flows/${id}`);
          }}
        />
      ) : null}
      {dialog === "templates" ? (
        <TemplatesDialog onClose={() => setDialog(null)} onCreated={(id) => navigate(`/flows/${id}`)} />
      ) : null}
    </div>
  );
}
