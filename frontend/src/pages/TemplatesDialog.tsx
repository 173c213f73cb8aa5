/** The templates library: pick a template, fill its parameters, create a flow from it. */
import { useEffect, useMemo, useState } from "react";
import { ApiError, api, errorMessage, unwrap } from "../api/client";
import { useAllDevices, useEdges } from "../api/resources";
import type { Diagnostic, TemplateSummary } from "../api/types";
import { Modal } from "../ui/Modal";

type Value = string | number | boolean | null;

function Thumbnail({ preview }: { preview: TemplateSummary["preview"] }) {
  const box = useMemo(() => {
    const xs = preview.nodes.map((n) => n.position.x);
    const ys = preview.nodes.map((n) => n.position.y);
    const x0 = Math.min(0, ...xs);
    const y0 = Math.min(0, ...ys);
    return { x0, y0, w: Math.max(...xs, 1) - x0 + 200, h: Math.max(...ys, 1) - y0 + 60 };
  }, [preview]);
  const pos = new Map(preview.nodes.map((n) => [n.id, n.position]));
  return (
    <svg className="thumb" viewBox={`${box.x0 - 20} ${box.y0 - 20} ${box.w + 40} ${box.h + 40}`} aria-hidden="true">
      {preview.edges.map((e) => {
        const a = pos.get(e.source);
        const b = pos.get(e.target);
        if (!a || !b) return null;
        return <line key={e.id} x1={a.x + 180} y1={a.y + 25} x2={b.x} y2={b.y + 25} className="thumb-wire" />;
      })}
      {preview.nodes.map((n) => (
        <rect key={n.id} x={n.position.x} y={n.position.y} width={180} height={50} rx={8} className={`thumb-node cat-${n.category}`} />
      ))}
    </svg>
  );
}

function RefSelect({
  id,
  kind,
  value,
  onChange,
}: {
  id: string;
  kind: "edge" | "device";
  value: Value;
  onChange: (v: Value) => void;
}) {
  const edges = useEdges(kind === "edge");
  const devices = useAllDevices(kind === "device");
  const options =
    kind === "edge"
      ? (edges.data ?? []).map((e) => ({ id: e.id, label: e.name || e.id }))
      : (devices.data ?? []).map((d) => ({ id: d.id, label: `${d.name} (${d.protocol})` }));
  return (
    <select id={id} className="input select" value={value == null ? "" : String(value)} onChange={(e) => onChange(e.target.value || null)}>
      <option value="">— {kind === "edge" ? "flow default" : "none"} —</option>
      {options.map((o) => (
        <option key={o.id} value={o.id}>
          {o.label}
        </option>
      ))}
    </select>
  );
}

export function TemplatesDialog({ onClose, onCreated }: { onClose: () => void; onCreated: (flowId: string) => void }) {
  const [templates, setTemplates] = useState<TemplateSummary[] | null>(null);
  const [chosen, setChosen] = useState<TemplateSummary | null>(null);
  const [name, setName] = useState("");
  const [values, setValues] = useState<Record<string, Value>>({});
  const [problems, setProblems] = useState<Diagnostic[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    unwrap(api.GET("/api/templates")).then(setTemplates, (e: unknown) => setError(errorMessage(e)));
  }, []);

  const choose = (t: TemplateSummary) => {
    setChosen(t);
    setName(t.name);
    setProblems([]);
    setError(null);
    setValues(Object.fromEntries(t.parameters.map((p) => [p.name, (p.default ?? null) as Value])));
  };

  const create = async () => {
    if (!chosen) return;
    setBusy(true);
    setError(null);
    try {
      const result = await unwrap(
        api.POST("/api/templates/{template_id}/instantiate", {
          params: { path: { template_id: chosen.id } },
          body: { name, values },
        }),
      );
      onCreated(result.flow_id);
    } catch (err) {
      if (err instanceof ApiError && Array.isArray(err.body.extra?.diagnostics)) {
        setProblems(err.body.extra.diagnostics as Diagnostic[]);
      }
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal
      title={chosen ? `New flow from “${chosen.name}”` : "Templates"}
      onClose={onClose}
      wide
      testId="templates-dialog"
      footer={
        chosen ? (
          <>
            <button type="button" className="btn ghost" onClick={() => setChosen(null)}>
              Back
            </button>
            <button type="button" className="btn primary" disabled={busy || !name.trim()} onClick={create} data-testid="template-create">
              Create flow
            </button>
          </>
        ) : undefined
      }
    >
      {error ? <p className="field-error">{error}</p> : null}
      {!chosen ? (
        <div className="template-grid">
          {(templates ?? []).map((t) => (
            <button type="button" key={t.id} className="template-card" onClick={() => choose(t)} data-testid={`template-${t.id}`}>
              <Thumbnail preview={t.preview} />
              <div className="template-name">{t.name}</div>
              <div className="muted small">{t.category}{t.builtin ? " · built-in" : ""}</div>
              <div className="template-desc">{t.description}</div>
            </button>
          ))}
          {templates && templates.length === 0 ? <p className="muted">No templates yet.</p> : null}
          {!templates && !error ? <p className="muted">Loading…</p> : null}
        </div>
      ) : (
        <div className="schema-form">
          <div className="field">
            <label className="field-label" htmlFor="tpl-name">
              Flow name
            </label>
            <input id="tpl-name" className="input" value={name} onChange={(e) => setName(e.target.value)} maxLength={200} />
          </div>
          {chosen.parameters.map((p) => {
            const v = values[p.name];
            const set = (nv: Value) => setValues((s) => ({ ...s, [p.name]: nv }));
            return (
              <div className="field" key={p.name}>
                <label className="field-label" htmlFor={`tpl-${p.name}`}>
                  {p.label || p.name}
                  {p.required ? <span className="req">*</span> : null}
                </label>
                {p.kind === "boolean" ? (
                  <input id={`tpl-${p.name}`} type="checkbox" checked={v === true} onChange={(e) => set(e.target.checked)} />
                ) : p.kind === "edge" || p.kind === "device" ? (
                  <RefSelect id={`tpl-${p.name}`} kind={p.kind} value={v ?? null} onChange={set} />
                ) : p.kind === "enum" ? (
                  <select id={`tpl-${p.name}`} className="input select" value={v == null ? "" : String(v)} onChange={(e) => set(e.target.value)}>
                    {(p.options ?? []).map((o) => (
                      <option key={String(o)} value={String(o)}>
                        {String(o)}
                      </option>
                    ))}
                  </select>
                ) : (
                  <input
                    id={`tpl-${p.name}`}
                    className="input"
                    value={v == null ? "" : String(v)}
                    inputMode={p.kind === "number" || p.kind === "integer" ? "decimal" : undefined}
                    onChange={(e) => {
                      const t = e.target.value;
                      if (p.kind === "number" || p.kind === "integer") set(t === "" ? null : Number.isNaN(Number(t)) ? t : Number(t));
                      else set(t === "" ? null : t);
                    }}
                  />
                )}
                {p.description ? <div className="field-help">{p.description}</div> : null}
              </div>
            );
          })}
          {problems.length ? (
            <ul className="diag-list">
              {problems.map((d, i) => (
                <li key={i} className={`diag diag-${d.severity}`}>
                  <div>
                    <div className="diag-message">{d.message}</div>
                    {d.hint ? <div className="diag-hint">{d.hint}</div> : null}
                  </div>
                </li>
              ))}
            </ul>
          ) : null}
        </div>
      )}
    </Modal>
  );
}
