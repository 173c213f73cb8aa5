/**
 * The right-hand panel: the selected node's config form (generated from its JSON Schema),
 * a group's settings, a multi-selection's actions, or — with nothing selected — the flow's
 * problems list.
 */
import { AlertTriangle, CircleAlert, Eye, EyeOff, Group as GroupIcon, Trash2, Ungroup } from "lucide-react";
import { type ReactNode, useCallback, useMemo } from "react";
import { useCredentials, useDevices, useEdges } from "../api/resources";
import type { Device, Diagnostic } from "../api/types";
import { useSession } from "../app/session";
import { NodeIcon } from "../catalog/icons";
import { fieldsOf, useCatalog, useSpec } from "../catalog/store";
import { CATEGORY_TITLES, type CatalogEntry } from "../catalog/types";
import { configPath, nodeField } from "../flow/diagnostics";
import { type FrameNode, type ProxusNode, isFrame, isProxusNode } from "../flow/graph";
import { type FormContext, type Path, SchemaForm, pathString } from "../forms/SchemaForm";
import { type Field, setIn, validateConfig } from "../schema/jsonschema";
import { useEditor, useEditorStore } from "./store";

const NO_DIAGNOSTICS: Diagnostic[] = [];

function DiagnosticList({ diagnostics, onFocus }: { diagnostics: Diagnostic[]; onFocus?: (d: Diagnostic) => void }) {
  if (!diagnostics.length) return null;
  return (
    <ul className="diag-list">
      {diagnostics.map((d, i) => (
        <li key={i} className={`diag diag-${d.severity}`}>
          {d.severity === "error" ? <CircleAlert size={14} /> : <AlertTriangle size={14} />}
          <div>
            {onFocus && d.node_id ? (
              <button type="button" className="linklike" onClick={() => onFocus(d)}>
                {d.label || d.node_id}
              </button>
            ) : null}
            <div className="diag-message">{d.message}</div>
            {d.hint ? <div className="diag-hint">{d.hint}</div> : null}
            {d.line ? (
              <div className="diag-where">
                line {d.line}
                {d.column ? `, column ${d.column}` : ""}
              </div>
            ) : null}
          </div>
        </li>
      ))}
    </ul>
  );
}

/** Picker of a managed device of the node's protocol; picking one lets the device's settings apply. */
function DevicePicker({
  spec,
  value,
  readOnly,
  onPick,
}: {
  spec: CatalogEntry;
  value: unknown;
  readOnly: boolean;
  onPick: (device: Device | null, id: string | null) => void;
}) {
  const { data: devices, loading } = useDevices(spec.device_protocol);
  const current = typeof value === "string" ? value : "";
  if (devices === null && !loading) {
    return (
      <input
        className="input"
        value={current}
        readOnly={readOnly}
        placeholder="device id"
        onChange={(e) => onPick(null, e.target.value || null)}
      />
    );
  }
  const known = devices?.some((d) => d.id === current);
  return (
    <select
      className="input select"
      value={current}
      disabled={readOnly || loading}
      data-testid="device-picker"
      onChange={(e) => {
        const id = e.target.value || null;
        onPick(devices?.find((d) => d.id === id) ?? null, id);
      }}
    >
      <option value="">— none: set the connection here —</option>
      {current && !known ? <option value={current}>{current} (not found)</option> : null}
      {(devices ?? []).map((d) => (
        <option key={d.id} value={d.id}>
          {d.name} ({d.id}) · {d.points} tags · edge {d.edge ?? "—"}
        </option>
      ))}
    </select>
  );
}

/** The tag list a device node reads: every tag of its device, or a chosen subset. */
function DeviceTags({
  device,
  field,
  config,
  readOnly,
  onChange,
}: {
  device: Device;
  field: Field;
  config: Record<string, unknown>;
  readOnly: boolean;
  onChange: (value: unknown) => void;
}) {
  const all = (Array.isArray(device.settings[field.name]) ? device.settings[field.name] : []) as Record<string, unknown>[];
  const own = config[field.name];
  const chosen = new Set(
    Array.isArray(own) ? (own as Record<string, unknown>[]).map((r) => String(r.tag)) : all.map((r) => String(r.tag)),
  );
  const inherits = !Array.isArray(own);
  const toggle = (tag: string) => {
    const next = new Set(chosen);
    if (next.has(tag)) next.delete(tag);
    else next.add(tag);
    onChange(next.size === all.length ? undefined : all.filter((r) => next.has(String(r.tag))));
  };
  return (
    <div className="device-tags">
      <div className="muted small">
        Tags of {device.name}: {inherits ? `all ${all.length}` : `${chosen.size} of ${all.length}`} read by this node
      </div>
      <div className="tag-picks" data-testid="device-tags">
        {all.map((r) => {
          const tag = String(r.tag);
          return (
            <label key={tag} className="tag-pick">
              <input type="checkbox" checked={chosen.has(tag)} disabled={readOnly} onChange={() => toggle(tag)} />
              <span>{tag}</span>
              {r.unit ? <span className="muted small">{String(r.unit)}</span> : null}
            </label>
          );
        })}
        {all.length === 0 ? <span className="muted">The device has no tags yet.</span> : null}
      </div>
    </div>
  );
}

function CredentialPicker({ value, readOnly, onChange }: { value: unknown; readOnly: boolean; onChange: (v: unknown) => void }) {
  const isAdmin = useSession((s) => s.me?.role === "admin");
  const { data } = useCredentials(isAdmin);
  const current = typeof value === "string" ? value : "";
  if (!data) {
    return (
      <input
        className="input"
        value={current}
        placeholder="stored credential id (none)"
        readOnly={readOnly}
        onChange={(e) => onChange(e.target.value || null)}
      />
    );
  }
  return (
    <select className="input select" value={current} disabled={readOnly} onChange={(e) => onChange(e.target.value || null)}>
      <option value="">— none —</option>
      {current && !data.some((c) => c.id === current) ? <option value={current}>{current} (not found)</option> : null}
      {data.map((c) => (
        <option key={c.id} value={c.id}>
          {c.name} ({c.kind.replace("_", " ")})
        </option>
      ))}
    </select>
  );
}

function EdgePicker({
  value,
  readOnly,
  onChange,
  emptyLabel = "— device's or flow default —",
}: {
  value: string | null | undefined;
  readOnly: boolean;
  onChange: (v: string | null) => void;
  emptyLabel?: string;
}) {
  const { data } = useEdges();
  if (!data) {
    return (
      <input
        className="input"
        value={value ?? ""}
        readOnly={readOnly}
        placeholder="flow default"
        onChange={(e) => onChange(e.target.value || null)}
      />
    );
  }
  return (
    <select className="input select" value={value ?? ""} disabled={readOnly} onChange={(e) => onChange(e.target.value || null)}>
      <option value="">{emptyLabel}</option>
      {value && !data.some((e) => e.id === value) ? <option value={value}>{value} (not registered)</option> : null}
      {data.map((e) => (
        <option key={e.id} value={e.id}>
          {e.name || e.id} {e.status?.online ? "· online" : "· offline"}
        </option>
      ))}
    </select>
  );
}

function NodeInspector({ id }: { id: string }) {
  // The node's data only: dragging the node (a new position) does not re-render the form.
  const data = useEditor((s) => (s.nodes.find((n) => n.id === id) as ProxusNode | undefined)?.data);
  if (!data) return null;
  return <NodeForm node={{ id, data }} />;
}

function NodeForm({ node }: { node: Pick<ProxusNode, "id" | "data"> }) {
  const store = useEditorStore();
  const spec = useSpec(node.data.type, node.data.typeVersion);
  const readOnly = useEditor((s) => s.readOnly);
  const diagnostics = useEditor((s) => s.diagnostics.byNode[node.id]) ?? NO_DIAGNOSTICS;
  const expressions = useCatalog((s) => s.expressions);
  const config = node.data.config;
  const fields = useMemo(() => (spec ? fieldsOf(spec) : []), [spec]);
  const deviceId = spec?.device_protocol && typeof config.device === "string" ? config.device : null;
  const { data: devices } = useDevices(deviceId ? spec!.device_protocol : null);
  const device = devices?.find((d) => d.id === deviceId) ?? null;

  const update = useCallback(
    (path: Path, value: unknown) => {
      const current = store.getState().nodes.find((n) => n.id === node.id);
      if (!current || !isProxusNode(current)) return;
      store.getState().updateNode(node.id, { config: setIn(current.data.config, path, value) }, pathString(path));
    },
    [store, node.id],
  );

  const errors = useMemo(() => {
    const map = new Map<string, string>();
    for (const d of diagnostics) {
      const p = configPath(d.path);
      if (p && !map.has(p)) map.set(p, d.hint ? `${d.message} — ${d.hint}` : d.message);
    }
    const own = validateConfig(fields, config);
    // Fields the device provides are not required on the node.
    if (device) for (const k of Object.keys(device.settings)) if (!(k in config)) own.delete(`$.${k}`);
    for (const [k, v] of own) map.set(k, v);
    return map;
  }, [diagnostics, fields, config, device]);

  const widget = useCallback(
    (field: Field, path: Path, value: unknown, ctx: FormContext): ReactNode | null => {
      if (path.length !== 1 || !spec) return null;
      if (field.name === "device" && spec.device_protocol) {
        return (
          <DevicePicker
            spec={spec}
            value={value}
            readOnly={ctx.readOnly}
            onPick={(dev, id) => {
              const current = store.getState().nodes.find((n) => n.id === node.id);
              if (!current || !isProxusNode(current)) return;
              const next: Record<string, unknown> = { ...current.data.config, device: id };
              // The device's settings apply unless the node sets them: drop the node's copies.
              if (dev) for (const k of Object.keys(dev.settings)) delete next[k];
              store.getState().updateNode(node.id, { config: next });
            }}
          />
        );
      }
      if (field.name === "credential" && (field.kind === "string" || field.nullable)) {
        return <CredentialPicker value={value} readOnly={ctx.readOnly} onChange={(v) => ctx.onChange(path, v)} />;
      }
      if (device && field.name in device.settings && !(field.name in config)) {
        if (field.kind === "table" && (field.fields ?? []).some((f) => f.name === "tag")) {
          return (
            <DeviceTags device={device} field={field} config={config} readOnly={ctx.readOnly} onChange={(v) => ctx.onChange(path, v)} />
          );
        }
        const inherited = device.settings[field.name];
        return (
          <div className="inherited">
            <span className="inherited-value">{typeof inherited === "object" ? JSON.stringify(inherited) : String(inherited)}</span>
            <span className="muted small">from device {device.name}</span>
            {!ctx.readOnly ? (
              <button type="button" className="btn small ghost" onClick={() => ctx.onChange(path, structuredClone(inherited))}>
                Override
              </button>
            ) : null}
          </div>
        );
      }
      if (device && field.kind === "table" && field.name in device.settings && Array.isArray(config[field.name])) {
        return (
          <DeviceTags device={device} field={field} config={config} readOnly={ctx.readOnly} onChange={(v) => ctx.onChange(path, v)} />
        );
      }
      return null;
    },
    [spec, device, config, node.id, store],
  );

  const expressionHelp = useMemo(
    () =>
      expressions
        ? { functions: expressions.functions, constants: expressions.constants, fields: expressions.filter_fields }
        : undefined,
    [expressions],
  );
  const ctx: FormContext = { readOnly, errors, diagnostics, onChange: update, widget, expressionHelp };

  const watching = useEditor((s) => s.watched.includes(node.id));
  const toggleWatch = useEditor((s) => s.toggleWatch);
  const general = diagnostics.filter((d) => configPath(d.path) == null || !errors.has(configPath(d.path)!));
  const labelProblem = diagnostics.find((d) => nodeField(d.path) === "label");

  return (
    <div className="inspector-body" data-testid="inspector" data-node-id={node.id}>
      <div className="inspector-head">
        <div className={`inspector-icon cat-${spec?.category ?? "unknown"}`}>
          <NodeIcon name={spec?.icon} size={20} />
        </div>
        <div>
          <div className="inspector-title">{spec?.title ?? node.data.type}</div>
          <div className="muted small">
            {CATEGORY_TITLES[spec?.category ?? ""] ?? spec?.category} · {node.data.type} v{node.data.typeVersion}
          </div>
        </div>
      </div>
      {spec ? <p className="inspector-desc">{spec.description}</p> : <p className="field-error">This node type is not in the catalog.</p>}
      {spec && spec.type !== "sink.debug" ? (
        <button
          type="button"
          className={`btn small ${watching ? "on" : "ghost"} watch-btn`}
          onClick={() => toggleWatch(node.id)}
          title="Show what this node receives and sends in the debug panel while the flow runs"
        >
          {watching ? <EyeOff size={14} /> : <Eye size={14} />} {watching ? "Stop watching" : "Watch in debug"}
        </button>
      ) : null}
      <div className="field">
        <div className="field-head">
          <label className="field-label" htmlFor="node-label">
            Name on the canvas
          </label>
          <span className="muted small mono" title="Node id">
            {node.id}
          </span>
        </div>
        <input
          id="node-label"
          className="input"
          value={node.data.label}
          placeholder={spec?.title ?? ""}
          readOnly={readOnly}
          maxLength={200}
          onChange={(e) => store.getState().updateNode(node.id, { label: e.target.value }, "label")}
        />
        {labelProblem ? <div className="field-error">{labelProblem.message}</div> : null}
      </div>
      {spec?.category === "device" ? (
        <div className="field">
          <div className="field-head">
            <span className="field-label">Edge gateway</span>
          </div>
          <EdgePicker
            value={node.data.edge}
            readOnly={readOnly}
            onChange={(edge) => store.getState().updateNode(node.id, { edge })}
          />
        </div>
      ) : null}
      <DiagnosticList diagnostics={general} />
      {spec ? <SchemaForm fields={fields} value={config} ctx={ctx} /> : null}
    </div>
  );
}

const FRAME_COLOURS = ["", "#2f6fb0", "#3d8b6d", "#c2771c", "#a34a5a", "#7a5cb8", "#5b6472"];

function FrameInspector({ frame }: { frame: FrameNode }) {
  const readOnly = useEditor((s) => s.readOnly);
  const updateGroup = useEditor((s) => s.updateGroup);
  const ungroup = useEditor((s) => s.ungroup);
  return (
    <div className="inspector-body">
      <div className="inspector-head">
        <div className="inspector-icon">
          <GroupIcon size={20} />
        </div>
        <div className="inspector-title">Group</div>
      </div>
      <div className="field">
        <label className="field-label" htmlFor="group-label">
          Title
        </label>
        <input
          id="group-label"
          className="input"
          value={frame.data.label}
          readOnly={readOnly}
          onChange={(e) => updateGroup(frame.data.groupId, { label: e.target.value })}
        />
      </div>
      <div className="field">
        <span className="field-label">Colour</span>
        <div className="swatches">
          {FRAME_COLOURS.map((c) => (
            <button
              key={c || "default"}
              type="button"
              className={`swatch ${frame.data.color === c ? "on" : ""}`}
              style={{ background: c || "var(--frame)" }}
              disabled={readOnly}
              aria-label={c || "default colour"}
              onClick={() => updateGroup(frame.data.groupId, { color: c })}
            />
          ))}
        </div>
      </div>
      <p className="muted">
        {frame.data.members.length} node{frame.data.members.length === 1 ? "" : "s"}. Drag the title bar to move the group.
      </p>
      {!readOnly ? (
        <button type="button" className="btn" onClick={() => ungroup(frame.data.groupId)}>
          <Ungroup size={15} /> Ungroup
        </button>
      ) : null}
    </div>
  );
}

function FlowOverview() {
  const index = useEditor((s) => s.diagnostics);
  const metadata = useEditor((s) => s.header.metadata);
  const setMetadata = useEditor((s) => s.setMetadata);
  const readOnly = useEditor((s) => s.readOnly);
  const revision = useEditor((s) => s.revision);
  const checked = useEditor((s) => s.diagnosticsRevision);
  const nodeCount = useEditor((s) => s.nodes.filter(isProxusNode).length);
  const wireCount = useEditor((s) => s.edges.length);
  const selectOnly = useEditor((s) => s.selectOnly);
  const all = useMemo(
    () => [
      ...index.general,
      ...Object.values(index.byNode).flat(),
      ...Object.values(index.byEdge)
        .flat()
        .filter((d) => !d.node_id),
    ],
    [index],
  );
  return (
    <div className="inspector-body">
      <div className="inspector-title">Flow</div>
      <p className="muted">
        {nodeCount} nodes · {wireCount} wires. Select a node to configure it.
      </p>
      <div className="field">
        <span className="field-label">Default edge gateway</span>
        <EdgePicker
          value={metadata?.default_edge ?? null}
          readOnly={readOnly}
          onChange={(edge) => setMetadata({ default_edge: edge })}
          emptyLabel="— local —"
        />
        <div className="field-help">Where source nodes run unless they (or their device) name an edge.</div>
      </div>
      <div className="field">
        <label className="field-label" htmlFor="flow-description">
          Description
        </label>
        <textarea
          id="flow-description"
          className="input"
          rows={2}
          readOnly={readOnly}
          value={metadata?.description ?? ""}
          onChange={(e) => setMetadata({ description: e.target.value })}
        />
      </div>
      <div className="overview-status" data-testid="validation-summary">
        {checked < revision ? (
          <span className="muted">Checking…</span>
        ) : index.errors === 0 && index.warnings === 0 ? (
          <span className="ok">No problems found</span>
        ) : (
          <span>
            {index.errors} error{index.errors === 1 ? "" : "s"}, {index.warnings} warning{index.warnings === 1 ? "" : "s"}
          </span>
        )}
      </div>
      <DiagnosticList diagnostics={all} onFocus={(d) => d.node_id && selectOnly([d.node_id])} />
    </div>
  );
}

function MultiInspector({ count }: { count: number }) {
  const readOnly = useEditor((s) => s.readOnly);
  const groupSelection = useEditor((s) => s.groupSelection);
  const deleteSelection = useEditor((s) => s.deleteSelection);
  return (
    <div className="inspector-body">
      <div className="inspector-title">{count} selected</div>
      {!readOnly ? (
        <div className="stack">
          <button type="button" className="btn" onClick={() => groupSelection("Group")}>
            <GroupIcon size={15} /> Group <kbd>Ctrl+G</kbd>
          </button>
          <button type="button" className="btn danger" onClick={deleteSelection}>
            <Trash2 size={15} /> Delete <kbd>Del</kbd>
          </button>
        </div>
      ) : null}
      <p className="muted">Ctrl+C copies the selection as JSON; paste it into any flow with Ctrl+V.</p>
    </div>
  );
}

function FrameInspectorById({ id }: { id: string }) {
  const frame = useEditor((s) => s.nodes.find((n) => n.id === id));
  return frame && isFrame(frame) ? <FrameInspector frame={frame} /> : null;
}

export function Inspector() {
  const selected = useEditor((s) => s.selectedNodes);
  const onlyType = useEditor((s) =>
    s.selectedNodes.length === 1 ? s.nodes.find((n) => n.id === s.selectedNodes[0])?.type : undefined,
  );
  const onlyId = selected.length === 1 ? selected[0]! : null;
  let body: ReactNode;
  if (onlyId && onlyType === "proxus") body = <NodeInspector key={onlyId} id={onlyId} />;
  else if (onlyId && onlyType === "frame") body = <FrameInspectorById id={onlyId} />;
  else if (selected.length > 1) body = <MultiInspector count={selected.length} />;
  else body = <FlowOverview />;
  return (
    <aside className="inspector" aria-label="Configuration">
      {body}
    </aside>
  );
}
