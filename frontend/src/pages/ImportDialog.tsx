/**
 * Import a flow file: a dry run first shows every problem (per node) before anything is saved;
 * when the flow id exists, the user chooses a new version of it or a copy.
 */
import { CircleAlert, AlertTriangle, FileUp } from "lucide-react";
import { useState } from "react";
import { ApiError, api, errorMessage, request, unwrap } from "../api/client";
import type { Diagnostic, ImportReport } from "../api/types";
import { Modal } from "../ui/Modal";

type Conflict = "fail" | "new_version" | "copy";

interface NodeProblems {
  key: string;
  title: string;
  diagnostics: Diagnostic[];
}

/** Diagnostics grouped by the node they are about (flow-level ones first). Pure. */
export function groupByNode(diagnostics: Diagnostic[]): NodeProblems[] {
  const groups = new Map<string, NodeProblems>();
  for (const d of diagnostics) {
    const key = d.node_id ?? "";
    let g = groups.get(key);
    if (!g) {
      g = { key, title: d.node_id ? `${d.label ? `${d.label} ` : ""}(${d.node_id})` : "The flow", diagnostics: [] };
      groups.set(key, g);
    }
    g.diagnostics.push(d);
  }
  return [...groups.values()].sort((a, b) => (a.key === "" ? -1 : b.key === "" ? 1 : a.key.localeCompare(b.key)));
}

function ProblemList({ diagnostics }: { diagnostics: Diagnostic[] }) {
  return (
    <div className="import-problems" data-testid="import-problems">
      {groupByNode(diagnostics).map((g) => (
        <section key={g.key} className="import-node">
          <div className="import-node-title">{g.title}</div>
          <ul className="diag-list">
            {g.diagnostics.map((d, i) => (
              <li key={i} className={`diag diag-${d.severity}`}>
                {d.severity === "error" ? <CircleAlert size={14} /> : <AlertTriangle size={14} />}
                <div>
                  <div className="diag-message">{d.message}</div>
                  {d.hint ? <div className="diag-hint">{d.hint}</div> : null}
                  <div className="diag-where mono">
                    {d.path}
                    {d.line ? ` · line ${d.line}${d.column ? `:${d.column}` : ""}` : ""}
                  </div>
                </div>
              </li>
            ))}
          </ul>
        </section>
      ))}
    </div>
  );
}

function flowIdOf(text: string): string | null {
  try {
    const raw = JSON.parse(text) as { id?: unknown };
    return typeof raw?.id === "string" ? raw.id : null;
  } catch {
    return null;
  }
}

export function ImportDialog({ onClose, onImported }: { onClose: () => void; onImported: (flowId: string) => void }) {
  const [file, setFile] = useState<{ name: string; text: string } | null>(null);
  const [conflict, setConflict] = useState<Conflict>("fail");
  const [exists, setExists] = useState<string | null>(null);
  const [report, setReport] = useState<ImportReport | null>(null);
  const [problems, setProblems] = useState<Diagnostic[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const run = async (text: string, onConflict: Conflict, dryRun: boolean) => {
    setBusy(true);
    setError(null);
    try {
      const r = await request<ImportReport>(
        "POST",
        `/api/flows/import?dry_run=${dryRun}&on_conflict=${onConflict}`,
        text,
        { text: true },
      );
      if (dryRun) {
        setReport(r);
        setProblems(null);
      } else {
        onImported(r.flow_id);
      }
    } catch (err) {
      setReport(null);
      if (err instanceof ApiError && err.status === 409) {
        setExists(String(err.body.extra?.flow_id ?? ""));
        setProblems(null);
      } else if (err instanceof ApiError && Array.isArray(err.body.extra?.diagnostics)) {
        setProblems(err.body.extra.diagnostics as Diagnostic[]);
      } else if (err instanceof ApiError && err.body.details?.length) {
        setProblems(
          err.body.details.map((d) => ({ severity: "error", code: err.code, message: d.message, path: d.field, node_id: d.node_id })),
        );
      } else {
        setError(errorMessage(err));
      }
    } finally {
      setBusy(false);
    }
  };

  const pick = async (f: File) => {
    const text = await f.text();
    setFile({ name: f.name, text });
    setExists(null);
    setReport(null);
    setProblems(null);
    setConflict("fail");
    // Ask first whether the flow exists, so the user decides before the Hub refuses it.
    const id = flowIdOf(text);
    if (id) {
      try {
        const found = await unwrap(api.GET("/api/flows", { params: { query: { q: id, limit: 1000 } } }));
        if (found.some((flow) => flow.id === id)) {
          setExists(id);
          return;
        }
      } catch {
        /* the import's own answer will tell */
      }
    }
    await run(text, "fail", true);
  };

  const choose = async (c: Conflict) => {
    setConflict(c);
    if (file) await run(file.text, c, true);
  };

  return (
    <Modal
      title="Import a flow"
      onClose={onClose}
      wide
      testId="import-dialog"
      footer={
        <>
          <button type="button" className="btn ghost" onClick={onClose}>
            Cancel
          </button>
          <button
            type="button"
            className="btn primary"
            disabled={!report?.ok || busy || !file}
            onClick={() => file && run(file.text, conflict, false)}
            data-testid="import-confirm"
          >
            {report && !report.created ? `Import as version of ${report.flow_id}` : "Import"}
          </button>
        </>
      }
    >
      <label className="file-drop">
        <FileUp size={18} />
        <span>{file ? file.name : "Choose a .json flow file (exported from Proxus)"}</span>
        <input
          type="file"
          accept=".json,application/json"
          data-testid="import-file"
          onChange={(e) => {
            const f = e.target.files?.[0];
            if (f) void pick(f);
          }}
        />
      </label>
      {busy ? <p className="muted">Checking…</p> : null}
      {error ? <p className="field-error">{error}</p> : null}
      {exists ? (
        <div className="notice warn">
          A flow with the id <b>{exists}</b> exists already. Import this file as
          <div className="radio-row">
            <label>
              <input
                type="radio"
                name="conflict"
                checked={conflict === "new_version"}
                onChange={() => void choose("new_version")}
                data-testid="import-as-version"
              />{" "}
              its next
              version
            </label>
            <label>
              <input type="radio" name="conflict" checked={conflict === "copy"} onChange={() => void choose("copy")} data-testid="import-as-copy" /> a
              new flow (a copy)
            </label>
          </div>
        </div>
      ) : null}
      {problems ? (
        <>
          <p className="field-error">
            The file cannot be imported: {problems.filter((d) => d.severity === "error").length} problem(s). Nothing was saved.
          </p>
          <ProblemList diagnostics={problems} />
        </>
      ) : null}
      {report ? (
        <div data-testid="import-ok">
          <p className="ok">
            Ready to import <b>{report.flow_id}</b> {report.created ? "as a new flow" : "as a new version"}
            {report.plans?.length ? ` — compiles to ${report.plans.length} plan(s) (${report.plans.map((p) => p.edge).join(", ")})` : ""}.
          </p>
          {report.diagnostics.length ? <ProblemList diagnostics={report.diagnostics} /> : <p className="muted">No warnings.</p>}
        </div>
      ) : null}
    </Modal>
  );
}
