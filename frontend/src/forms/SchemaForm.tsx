/**
 * A form generated from a JSON Schema form model (schema/jsonschema.ts). Widgets by field kind:
 * text, number (min/max), select (enum), toggle, chips (enum lists), CodeMirror (x-widget code),
 * editable table (arrays of objects), lists, key/value maps, nested fieldsets, raw JSON.
 */
import { ArrowDown, ArrowUp, Copy, Maximize2, Plus, Trash2, X } from "lucide-react";
import { type ReactNode, Suspense, lazy, memo, useCallback, useEffect, useId, useMemo, useState } from "react";
import type { Diagnostic } from "../api/types";
import { type Field, initialValue, newRow, pathJoin } from "../schema/jsonschema";

const CodeEditor = lazy(() => import("./CodeEditor"));

export type Path = (string | number)[];

export function pathString(path: Path): string {
  return path.reduce<string>((acc, p) => pathJoin(acc, p), "$");
}

export interface FormContext {
  readOnly: boolean;
  /** Problems by JSON path relative to the form's value (client-side checks and the Hub's). */
  errors: Map<string, string>;
  /** The Hub's diagnostics for this node (code fields mark their lines). */
  diagnostics: Diagnostic[];
  onChange: (path: Path, value: unknown) => void;
  /** A special widget for a field (device or credential pickers), or null for the generic one. */
  widget?: (field: Field, path: Path, value: unknown, ctx: FormContext) => ReactNode | null;
  expressionHelp?: { functions: Record<string, string>; constants: Record<string, string>; fields: Record<string, string> };
}

function valueOr(field: Field, value: unknown): unknown {
  return value === undefined ? (field.hasDefault ? field.default : undefined) : value;
}

function Help({ text, examples }: { text: string; examples?: unknown[] }) {
  if (!text && !examples?.length) return null;
  return (
    <div className="field-help">
      {text}
      {examples?.length ? (
        <span className="field-examples">
          {" "}
          e.g.{" "}
          {examples
            .slice(0, 2)
            .map((e) => (typeof e === "string" ? e : JSON.stringify(e)))
            .join(" · ")}
        </span>
      ) : null}
    </div>
  );
}

function ErrorText({ message }: { message: string | undefined }) {
  if (!message) return null;
  return (
    <div className="field-error" role="alert">
      {message}
    </div>
  );
}

/** What every generated input takes. */
interface InputProps {
  id?: string;
  value: unknown;
  onChange: (v: unknown) => void;
  field: Field;
  readOnly: boolean;
  invalid?: boolean;
  compact?: boolean;
}

/** Text input that commits as you type; `nullable` turns an empty box into null. */
export function TextInput({
  id,
  value,
  onChange,
  field,
  readOnly,
  invalid,
  compact,
}: InputProps) {
  const text = value == null ? "" : String(value);
  const placeholder =
    field.nullable && value == null ? (compact ? "—" : "not set") : typeof field.examples[0] === "string" ? String(field.examples[0]) : "";
  return (
    <input
      id={id}
      type={field.secret ? "password" : "text"}
      className={`input ${invalid ? "invalid" : ""}`}
      value={text}
      placeholder={placeholder}
      readOnly={readOnly}
      maxLength={field.schema.maxLength}
      aria-invalid={invalid || undefined}
      onChange={(e) => onChange(e.target.value === "" && field.nullable ? null : e.target.value)}
    />
  );
}

/** Number input keeping a draft (so "-" or "1." can be typed); empty → null when nullable. */
export function NumberInput({
  id,
  value,
  onChange,
  field,
  readOnly,
  invalid,
  compact,
}: InputProps) {
  const external = value == null ? "" : String(value);
  const [draft, setDraft] = useState(external);
  const [focused, setFocused] = useState(false);
  useEffect(() => {
    if (!focused) setDraft(external);
  }, [external, focused]);
  const s = field.schema;
  const min = s.minimum ?? (s.exclusiveMinimum !== undefined ? undefined : undefined);
  const commit = (text: string) => {
    setDraft(text);
    if (text.trim() === "") {
      onChange(field.nullable ? null : undefined);
      return;
    }
    const n = Number(text);
    if (!Number.isNaN(n)) onChange(n);
    else onChange(text); // shown as "must be a number"
  };
  return (
    <input
      id={id}
      type="text"
      inputMode={field.kind === "integer" ? "numeric" : "decimal"}
      className={`input number ${invalid ? "invalid" : ""}`}
      value={focused ? draft : external}
      placeholder={field.nullable ? (compact ? "—" : "not set") : ""}
      readOnly={readOnly}
      aria-invalid={invalid || undefined}
      data-min={min}
      onFocus={() => {
        setDraft(external);
        setFocused(true);
      }}
      onBlur={() => setFocused(false)}
      onChange={(e) => commit(e.target.value)}
      onKeyDown={(e) => {
        if (readOnly || (e.key !== "ArrowUp" && e.key !== "ArrowDown")) return;
        const n = Number(draft || external || 0);
        if (Number.isNaN(n)) return;
        e.preventDefault();
        const step = field.kind === "integer" ? 1 : Math.abs(n) >= 10 ? 1 : 0.1;
        let next = e.key === "ArrowUp" ? n + step : n - step;
        next = Math.round(next * 1e6) / 1e6;
        if (s.maximum !== undefined) next = Math.min(next, s.maximum);
        if (s.minimum !== undefined) next = Math.max(next, s.minimum);
        commit(String(next));
      }}
    />
  );
}

function enumLabel(v: unknown): string {
  return typeof v === "string" ? v.replace(/_/g, " ") : String(v);
}

export function SelectInput({
  id,
  value,
  onChange,
  field,
  readOnly,
  invalid,
}: {
  id?: string;
  value: unknown;
  onChange: (v: unknown) => void;
  field: Field;
  readOnly: boolean;
  invalid?: boolean;
}) {
  const options = field.enumValues ?? [];
  const index = options.findIndex((o) => o === value);
  return (
    <select
      id={id}
      className={`input select ${invalid ? "invalid" : ""}`}
      value={index >= 0 ? String(index) : value == null ? "" : "?"}
      disabled={readOnly}
      onChange={(e) => onChange(e.target.value === "" ? null : options[Number(e.target.value)])}
    >
      {field.nullable || value == null ? <option value="">{field.nullable ? "— default —" : "— choose —"}</option> : null}
      {index < 0 && value != null ? <option value="?">{String(value)} (unknown)</option> : null}
      {options.map((o, i) => (
        <option key={i} value={String(i)}>
          {enumLabel(o)}
        </option>
      ))}
    </select>
  );
}

export function Toggle({
  id,
  value,
  onChange,
  readOnly,
  label,
}: {
  id?: string;
  value: unknown;
  onChange: (v: unknown) => void;
  readOnly: boolean;
  label?: string;
}) {
  return (
    <label className="toggle">
      <input
        id={id}
        type="checkbox"
        checked={value === true}
        disabled={readOnly}
        onChange={(e) => onChange(e.target.checked)}
      />
      <span className="toggle-track" aria-hidden="true" />
      {label ? <span className="toggle-label">{label}</span> : null}
    </label>
  );
}

function MultiEnum({ field, value, onChange, readOnly }: { field: Field; value: unknown; onChange: (v: unknown) => void; readOnly: boolean }) {
  const selected = Array.isArray(value) ? value : [];
  return (
    <div className="chips" role="group" aria-label={field.title}>
      {(field.enumValues ?? []).map((o) => {
        const on = selected.includes(o);
        return (
          <button
            key={String(o)}
            type="button"
            className={`chip ${on ? "on" : ""}`}
            aria-pressed={on}
            disabled={readOnly}
            onClick={() =>
              onChange(
                on
                  ? selected.filter((v) => v !== o)
                  : (field.enumValues ?? []).filter((v) => v === o || selected.includes(v)),
              )
            }
          >
            {enumLabel(o)}
          </button>
        );
      })}
    </div>
  );
}

function JsonInput({ value, onChange, readOnly, invalid }: { value: unknown; onChange: (v: unknown) => void; readOnly: boolean; invalid?: boolean }) {
  const external = useMemo(() => (value === undefined ? "" : JSON.stringify(value, null, 2)), [value]);
  const [draft, setDraft] = useState(external);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setDraft(external);
    setError(null);
  }, [external]);
  return (
    <>
      <textarea
        className={`input json ${invalid || error ? "invalid" : ""}`}
        value={draft}
        readOnly={readOnly}
        rows={Math.min(12, Math.max(3, draft.split("\n").length))}
        spellCheck={false}
        onChange={(e) => {
          setDraft(e.target.value);
          try {
            const parsed = e.target.value.trim() === "" ? null : JSON.parse(e.target.value);
            setError(null);
            onChange(parsed);
          } catch (err) {
            setError(`not valid JSON: ${(err as Error).message}`);
          }
        }}
      />
      <ErrorText message={error ?? undefined} />
    </>
  );
}

function ListInput({ field, value, path, ctx }: { field: Field; value: unknown; path: Path; ctx: FormContext }) {
  const items = Array.isArray(value) ? value : [];
  const item = field.item!;
  return (
    <div className="list-field">
      {items.map((v, i) => (
        <div className="list-row" key={i}>
          <Widget field={item} value={v} path={[...path, i]} ctx={ctx} compact />
          {!ctx.readOnly ? (
            <button
              type="button"
              className="icon-btn"
              title="Remove"
              onClick={() => ctx.onChange(path, items.filter((_, j) => j !== i))}
            >
              <X size={14} />
            </button>
          ) : null}
        </div>
      ))}
      {!ctx.readOnly ? (
        <button type="button" className="btn small ghost" onClick={() => ctx.onChange(path, [...items, initialValue(item)])}>
          <Plus size={14} /> Add
        </button>
      ) : null}
    </div>
  );
}

function MapInput({ field, value, path, ctx }: { field: Field; value: unknown; path: Path; ctx: FormContext }) {
  const entries = value && typeof value === "object" && !Array.isArray(value) ? Object.entries(value as object) : [];
  const rename = (from: string, to: string) => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of entries) out[k === from ? to : k] = v;
    ctx.onChange(path, out);
  };
  return (
    <div className="map-field">
      {entries.map(([k, v], i) => (
        <div className="map-row" key={i}>
          <input
            className="input"
            value={k}
            readOnly={ctx.readOnly}
            aria-label="Name"
            onChange={(e) => rename(k, e.target.value)}
          />
          <Widget field={field.value!} value={v} path={[...path, k]} ctx={ctx} compact />
          {!ctx.readOnly ? (
            <button
              type="button"
              className="icon-btn"
              title="Remove"
              onClick={() => ctx.onChange(path, Object.fromEntries(entries.filter(([kk]) => kk !== k)))}
            >
              <X size={14} />
            </button>
          ) : null}
        </div>
      ))}
      {!ctx.readOnly ? (
        <button
          type="button"
          className="btn small ghost"
          onClick={() => {
            let name = "name";
            for (let i = 2; entries.some(([k]) => k === name); i++) name = `name_${i}`;
            ctx.onChange(path, { ...Object.fromEntries(entries), [name]: initialValue(field.value!) });
          }}
        >
          <Plus size={14} /> Add
        </button>
      ) : null}
    </div>
  );
}

function isCellKind(f: Field): boolean {
  return ["string", "number", "integer", "boolean", "enum"].includes(f.kind);
}

function TableInput({ field, value, path, ctx, expanded }: { field: Field; value: unknown; path: Path; ctx: FormContext; expanded?: boolean }) {
  const rows = Array.isArray(value) ? (value as Record<string, unknown>[]) : [];
  const columns = field.fields ?? [];
  const [big, setBig] = useState(false);
  const move = (i: number, d: number) => {
    const j = i + d;
    if (j < 0 || j >= rows.length) return;
    const next = [...rows];
    [next[i], next[j]] = [next[j]!, next[i]!];
    ctx.onChange(path, next);
  };
  const table = (
    <div className={`table-wrap ${expanded ? "expanded" : ""}`}>
      <table className="grid" data-testid={`table-${field.name}`}>
        <thead>
          <tr>
            <th className="rownum">#</th>
            {columns.map((c) => (
              <th key={c.name} title={c.description}>
                {c.title}
                {c.required ? <span className="req">*</span> : null}
              </th>
            ))}
            {!ctx.readOnly ? <th className="actions" /> : null}
          </tr>
        </thead>
        <tbody>
          {rows.map((row, i) => (
            <tr key={i}>
              <td className="rownum">{i + 1}</td>
              {columns.map((c) => {
                const cellPath = [...path, i, c.name];
                const err = ctx.errors.get(pathString(cellPath));
                return (
                  <td key={c.name} className={err ? "cell-invalid" : ""} title={err}>
                    {isCellKind(c) ? (
                      <Widget field={c} value={row?.[c.name]} path={cellPath} ctx={ctx} compact />
                    ) : (
                      <JsonInput
                        value={row?.[c.name]}
                        readOnly={ctx.readOnly}
                        onChange={(v) => ctx.onChange(cellPath, v)}
                      />
                    )}
                  </td>
                );
              })}
              {!ctx.readOnly ? (
                <td className="actions">
                  <button type="button" className="icon-btn" title="Move up" onClick={() => move(i, -1)} disabled={i === 0}>
                    <ArrowUp size={13} />
                  </button>
                  <button type="button" className="icon-btn" title="Move down" onClick={() => move(i, 1)} disabled={i === rows.length - 1}>
                    <ArrowDown size={13} />
                  </button>
                  <button
                    type="button"
                    className="icon-btn"
                    title="Duplicate"
                    onClick={() => ctx.onChange(path, [...rows.slice(0, i + 1), structuredClone(row), ...rows.slice(i + 1)])}
                  >
                    <Copy size={13} />
                  </button>
                  <button
                    type="button"
                    className="icon-btn danger"
                    title="Delete row"
                    onClick={() => ctx.onChange(path, rows.filter((_, j) => j !== i))}
                  >
                    <Trash2 size={13} />
                  </button>
                </td>
              ) : null}
            </tr>
          ))}
          {rows.length === 0 ? (
            <tr>
              <td className="empty" colSpan={columns.length + 2}>
                No entries yet
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>
    </div>
  );
  return (
    <div className="table-field">
      {table}
      <div className="table-actions">
        {!ctx.readOnly ? (
          <button type="button" className="btn small" onClick={() => ctx.onChange(path, [...rows, newRow(columns)])}>
            <Plus size={14} /> Add row
          </button>
        ) : null}
        {!expanded ? (
          <button type="button" className="btn small ghost" onClick={() => setBig(true)} title="Edit in a large table">
            <Maximize2 size={14} /> Expand
          </button>
        ) : null}
        <span className="muted">{rows.length} {rows.length === 1 ? "entry" : "entries"}</span>
      </div>
      {big ? (
        <div className="modal-backdrop" onMouseDown={() => setBig(false)}>
          <div className="modal wide" onMouseDown={(e) => e.stopPropagation()} role="dialog" aria-label={field.title}>
            <div className="modal-head">
              <h2>{field.title}</h2>
              <button type="button" className="icon-btn" onClick={() => setBig(false)} title="Close">
                <X size={16} />
              </button>
            </div>
            <Help text={field.description} />
            <TableInput field={field} value={value} path={path} ctx={ctx} expanded />
          </div>
        </div>
      ) : null}
    </div>
  );
}

/** The editing widget of one field (no label). */
export function Widget({
  field,
  value,
  path,
  ctx,
  compact,
  id,
}: {
  field: Field;
  value: unknown;
  path: Path;
  ctx: FormContext;
  compact?: boolean;
  id?: string;
}): ReactNode {
  const v = valueOr(field, value);
  const key = pathString(path);
  const invalid = ctx.errors.has(key);
  const onChange = (next: unknown) => ctx.onChange(path, next);
  const custom = ctx.widget?.(field, path, v, ctx);
  if (custom) return custom;
  const common = { id, value: v, onChange, field, readOnly: ctx.readOnly, invalid, compact };
  switch (field.kind) {
    case "string":
      return <TextInput {...common} />;
    case "number":
    case "integer":
      return <NumberInput {...common} />;
    case "enum":
      return <SelectInput {...common} />;
    case "boolean":
      return <Toggle id={id} value={v} onChange={onChange} readOnly={ctx.readOnly} />;
    case "multi-enum":
      return <MultiEnum field={field} value={v} onChange={onChange} readOnly={ctx.readOnly} />;
    case "code":
      return (
        <Suspense fallback={<textarea className="input code-fallback" value={String(v ?? "")} readOnly rows={6} />}>
          <CodeEditor
            value={String(v ?? "")}
            language={field.language ?? "text"}
            readOnly={ctx.readOnly}
            onChange={onChange}
            diagnostics={ctx.diagnostics}
            fieldPath={key}
            help={ctx.expressionHelp}
            label={field.title}
          />
        </Suspense>
      );
    case "table":
      return <TableInput field={field} value={v} path={path} ctx={ctx} />;
    case "list":
      return <ListInput field={field} value={v} path={path} ctx={ctx} />;
    case "map":
      return <MapInput field={field} value={v} path={path} ctx={ctx} />;
    case "object":
      return (
        <fieldset className="subform">
          {(field.fields ?? []).map((f) => (
            <FieldRow
              key={f.name}
              field={f}
              value={v && typeof v === "object" ? (v as Record<string, unknown>)[f.name] : undefined}
              path={[...path, f.name]}
              ctx={ctx}
            />
          ))}
        </fieldset>
      );
    default:
      return <JsonInput value={v} onChange={onChange} readOnly={ctx.readOnly} invalid={invalid} />;
  }
}

/** One labelled field: title, widget, inline problem, help text. */
export const FieldRow = memo(function FieldRow({
  field,
  value,
  path,
  ctx,
}: {
  field: Field;
  value: unknown;
  path: Path;
  ctx: FormContext;
}) {
  const id = useId();
  const key = pathString(path);
  const error = ctx.errors.get(key);
  const wide = ["table", "code", "object", "map", "list", "json", "multi-enum"].includes(field.kind);
  return (
    <div className={`field field-${field.kind} ${wide ? "wide" : ""} ${error ? "has-error" : ""}`} data-field={key}>
      <div className="field-head">
        <label htmlFor={id} className="field-label">
          {field.title}
          {field.required && !field.hasDefault ? <span className="req" title="required">*</span> : null}
        </label>
        {field.kind === "boolean" ? <Widget id={id} field={field} value={value} path={path} ctx={ctx} /> : null}
      </div>
      {field.kind !== "boolean" ? <Widget id={id} field={field} value={value} path={path} ctx={ctx} /> : null}
      <ErrorText message={error} />
      <Help text={field.description} examples={field.kind === "string" || field.kind === "code" ? field.examples : undefined} />
    </div>
  );
});

export function SchemaForm({
  fields,
  value,
  ctx,
}: {
  fields: Field[];
  value: Record<string, unknown>;
  ctx: FormContext;
}) {
  return (
    <div className="schema-form">
      {fields.map((f) => (
        <FieldRow key={f.name} field={f} value={value[f.name]} path={[f.name]} ctx={ctx} />
      ))}
    </div>
  );
}

export function useStableCallback<T extends (...args: never[]) => unknown>(fn: T): T {
  const [ref] = useState(() => ({ current: fn }));
  ref.current = fn;
  return useCallback(((...args: Parameters<T>) => ref.current(...args)) as T, [ref]);
}
