/**
 * JSON Schema (as msgspec generates it for node configs) → a form model.
 *
 * Pure functions: no React. The config panel renders {@link Field}s; nothing in the app
 * hand-writes a form for a particular node type.
 */

export interface JsonSchema {
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  type?: string | string[];
  title?: string;
  description?: string;
  default?: unknown;
  examples?: unknown[];
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  "x-widget"?: string;
  "x-language"?: string;
  "x-secret"?: boolean;
  [key: string]: unknown;
}

export type FieldKind =
  | "string"
  | "code"
  | "number"
  | "integer"
  | "boolean"
  | "enum"
  | "multi-enum"
  | "object"
  | "map"
  | "table"
  | "list"
  | "json";

export interface Field {
  kind: FieldKind;
  /** Property name (empty for array items). */
  name: string;
  /** Human title: "Poll interval (ms)". */
  title: string;
  description: string;
  required: boolean;
  nullable: boolean;
  hasDefault: boolean;
  default: unknown;
  examples: unknown[];
  /** The resolved, non-null schema of the value. */
  schema: JsonSchema;
  enumValues?: unknown[];
  /** Object properties, or table columns. */
  fields?: Field[];
  /** List item (primitive lists). */
  item?: Field;
  /** Map values (objects with additionalProperties). */
  value?: Field;
  language?: string;
  secret?: boolean;
}

const UNITS: Record<string, string> = {
  ms: "ms",
  s: "s",
  hz: "Hz",
  mb: "MB",
  kb: "KB",
  pct: "%",
  percent: "%",
};

const WORDS: Record<string, string> = {
  id: "ID",
  url: "URL",
  http: "HTTP",
  udf: "UDF",
  opcua: "OPC UA",
  ua: "UA",
  nats: "NATS",
  tls: "TLS",
  eu: "EU",
};

/** "poll_interval_ms" → "Poll interval (ms)"; "unit_id" → "Unit ID". */
export function humanize(name: string): string {
  const parts = name.split(/[_\s]+/).filter(Boolean);
  if (parts.length === 0) return name;
  let unit = "";
  const last = parts[parts.length - 1]!.toLowerCase();
  if (parts.length > 1 && UNITS[last]) {
    unit = UNITS[last]!;
    parts.pop();
  }
  const words = parts.map((p, i) => {
    const lower = p.toLowerCase();
    if (WORDS[lower]) return WORDS[lower]!;
    return i === 0 ? lower.charAt(0).toUpperCase() + lower.slice(1) : lower;
  });
  return words.join(" ") + (unit ? ` (${unit})` : "");
}

/** Follow `$ref`s (into the root's `$defs`) until a concrete schema is reached. */
export function resolve(schema: JsonSchema | undefined, root: JsonSchema): JsonSchema {
  let current = schema ?? {};
  for (let depth = 0; current.$ref && depth < 32; depth++) {
    const ref = current.$ref;
    const name = ref.startsWith("#/$defs/") ? ref.slice("#/$defs/".length) : null;
    const target = name != null ? root.$defs?.[decodeURIComponent(name)] : undefined;
    if (!target) return {};
    // Keywords next to a $ref (description, default) take precedence over the target's.
    const { $ref: _ignored, ...rest } = current;
    current = { ...target, ...rest };
  }
  return current;
}

function isNullSchema(s: JsonSchema): boolean {
  return s.type === "null" || (Array.isArray(s.enum) && s.enum.length === 1 && s.enum[0] === null);
}

/** Split `anyOf: [X, {type: null}]` into X and a nullable flag; also `type: [X, "null"]`. */
export function unwrapNullable(schema: JsonSchema, root: JsonSchema): { schema: JsonSchema; nullable: boolean } {
  const s = resolve(schema, root);
  const variants = s.anyOf ?? s.oneOf;
  if (variants) {
    const nonNull = variants.filter((v) => !isNullSchema(resolve(v, root)));
    const nullable = nonNull.length < variants.length;
    if (nonNull.length === 1) {
      const { anyOf: _a, oneOf: _o, ...outer } = s;
      return { schema: { ...resolve(nonNull[0], root), ...outer }, nullable };
    }
    // Several non-null alternatives: merge enums of the same kind, else edit as JSON.
    if (nonNull.every((v) => Array.isArray(resolve(v, root).enum))) {
      const { anyOf: _a, oneOf: _o, ...outer } = s;
      return { schema: { ...outer, enum: nonNull.flatMap((v) => resolve(v, root).enum ?? []) }, nullable };
    }
    return { schema: s, nullable };
  }
  if (Array.isArray(s.type)) {
    const types = s.type.filter((t) => t !== "null");
    return { schema: { ...s, type: types.length === 1 ? types[0] : types }, nullable: types.length < s.type.length };
  }
  return { schema: s, nullable: false };
}

function primaryType(s: JsonSchema): string | undefined {
  if (Array.isArray(s.type)) return s.type.length === 1 ? s.type[0] : undefined;
  if (s.type) return s.type;
  if (s.properties) return "object";
  if (s.items) return "array";
  return undefined;
}

/** Build the form field for one property schema. */
export function fieldFor(name: string, raw: JsonSchema, root: JsonSchema, required = false, depth = 0): Field {
  const { schema, nullable } = unwrapNullable(raw, root);
  const hasDefault = Object.prototype.hasOwnProperty.call(schema, "default");
  const base: Field = {
    kind: "json",
    name,
    title: schema.title && depth > 0 && !name ? schema.title : humanize(name || schema.title || "value"),
    description: schema.description ?? "",
    required,
    nullable,
    hasDefault,
    default: schema.default,
    examples: Array.isArray(schema.examples) ? schema.examples : [],
    schema,
    secret: schema["x-secret"] === true,
  };
  if (depth > 8) return base;

  if (Array.isArray(schema.enum)) {
    return { ...base, kind: "enum", enumValues: schema.enum.filter((v) => v !== null) };
  }
  const type = primaryType(schema);
  switch (type) {
    case "string":
      if (schema["x-widget"] === "code") return { ...base, kind: "code", language: schema["x-language"] ?? "text" };
      return { ...base, kind: "string" };
    case "integer":
      return { ...base, kind: "integer" };
    case "number":
      return { ...base, kind: "number" };
    case "boolean":
      return { ...base, kind: "boolean" };
    case "array": {
      const itemSchema = unwrapNullable(schema.items ?? {}, root).schema;
      if (Array.isArray(itemSchema.enum)) {
        return { ...base, kind: "multi-enum", enumValues: itemSchema.enum };
      }
      const itemType = primaryType(itemSchema);
      if (itemType === "object" && itemSchema.properties) {
        return { ...base, kind: "table", fields: objectFields(itemSchema, root, depth + 1) };
      }
      if (itemType === "string" || itemType === "number" || itemType === "integer" || itemType === "boolean") {
        return { ...base, kind: "list", item: fieldFor("", schema.items ?? {}, root, true, depth + 1) };
      }
      return base;
    }
    case "object": {
      if (schema.properties && Object.keys(schema.properties).length > 0) {
        return { ...base, kind: "object", fields: objectFields(schema, root, depth + 1) };
      }
      const ap = schema.additionalProperties;
      if (ap && typeof ap === "object") {
        const valueField = fieldFor("", ap, root, true, depth + 1);
        if (["string", "number", "integer", "boolean", "enum"].includes(valueField.kind)) {
          return { ...base, kind: "map", value: valueField };
        }
      }
      return base;
    }
    default:
      return base;
  }
}

export function objectFields(schema: JsonSchema, root: JsonSchema, depth = 0): Field[] {
  const s = resolve(schema, root);
  const required = new Set(s.required ?? []);
  return Object.entries(s.properties ?? {}).map(([name, prop]) => fieldFor(name, prop, root, required.has(name), depth));
}

/** The form fields of a node type's config schema (the top-level `$ref` resolved). */
export function configFields(configSchema: JsonSchema): Field[] {
  return objectFields(resolve(configSchema, configSchema), configSchema);
}

function clone<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

/** A fresh value for a field: its default, else an empty value of its kind (null when nullable). */
export function initialValue(field: Field): unknown {
  if (field.hasDefault) return clone(field.default);
  if (field.nullable) return null;
  switch (field.kind) {
    case "string":
    case "code":
      return "";
    case "number":
    case "integer":
      return field.schema.minimum ?? 0;
    case "boolean":
      return false;
    case "enum":
      return field.enumValues?.[0] ?? null;
    case "multi-enum":
    case "table":
    case "list":
      return [];
    case "map":
      return {};
    case "object": {
      const out: Record<string, unknown> = {};
      for (const f of field.fields ?? []) out[f.name] = initialValue(f);
      return out;
    }
    default:
      return null;
  }
}

/** A new row for a table: every column's initial value. */
export function newRow(columns: Field[]): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  for (const c of columns) row[c.name] = initialValue(c);
  return row;
}

/** The config of a freshly placed node: every property with a default, set to it. */
export function defaultConfig(configSchema: JsonSchema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of configFields(configSchema)) {
    if (f.hasDefault) out[f.name] = clone(f.default);
    else if (f.required) out[f.name] = initialValue(f);
  }
  return out;
}

/** A JSON path segment the way the Hub writes them (proxus/diagnostics.py json_path). */
export function pathJoin(base: string, part: string | number): string {
  if (typeof part === "number") return `${base}[${part}]`;
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(part) ? `${base}.${part}` : `${base}[${JSON.stringify(part)}]`;
}

function describeNumber(v: number): string {
  return Number.isInteger(v) ? String(v) : String(v);
}

/** Check one value against its field; the message a user should see, or null. */
export function checkValue(field: Field, value: unknown): string | null {
  const s = field.schema;
  if (value === null || value === undefined) {
    if (field.nullable || !field.required || field.hasDefault) return null;
    return "required";
  }
  switch (field.kind) {
    case "string":
    case "code": {
      if (typeof value !== "string") return "must be text";
      if (s.minLength !== undefined && value.length < s.minLength) {
        return s.minLength === 1 ? "must not be empty" : `at least ${s.minLength} characters`;
      }
      if (s.maxLength !== undefined && value.length > s.maxLength) return `at most ${s.maxLength} characters`;
      if (s.pattern) {
        try {
          if (!new RegExp(s.pattern, "u").test(value)) return `does not match the expected format ${s.pattern}`;
        } catch {
          /* a pattern JS cannot read: the Hub checks it */
        }
      }
      return null;
    }
    case "number":
    case "integer": {
      if (typeof value !== "number" || Number.isNaN(value)) return "must be a number";
      if (field.kind === "integer" && !Number.isInteger(value)) return "must be a whole number";
      if (s.minimum !== undefined && value < s.minimum) return `must be at least ${describeNumber(s.minimum)}`;
      if (s.maximum !== undefined && value > s.maximum) return `must be at most ${describeNumber(s.maximum)}`;
      if (s.exclusiveMinimum !== undefined && value <= s.exclusiveMinimum) {
        return `must be greater than ${describeNumber(s.exclusiveMinimum)}`;
      }
      if (s.exclusiveMaximum !== undefined && value >= s.exclusiveMaximum) {
        return `must be less than ${describeNumber(s.exclusiveMaximum)}`;
      }
      return null;
    }
    case "boolean":
      return typeof value === "boolean" ? null : "must be on or off";
    case "enum":
      return field.enumValues?.some((e) => e === value) ? null : `must be one of ${field.enumValues?.join(", ")}`;
    case "multi-enum": {
      if (!Array.isArray(value)) return "must be a list";
      if (s.minItems !== undefined && value.length < s.minItems) {
        return s.minItems === 1 ? "pick at least one" : `pick at least ${s.minItems}`;
      }
      if (new Set(value).size !== value.length) return "each value at most once";
      return null;
    }
    case "table":
    case "list": {
      if (!Array.isArray(value)) return "must be a list";
      if (s.minItems !== undefined && value.length < s.minItems) return `needs at least ${s.minItems} entries`;
      if (s.maxItems !== undefined && value.length > s.maxItems) return `at most ${s.maxItems} entries`;
      return null;
    }
    case "object":
    case "map":
      return typeof value === "object" && !Array.isArray(value) ? null : "must be an object";
    default:
      return null;
  }
}

/**
 * Every client-side problem in a config, keyed by JSON path relative to the config
 * (`$.registers[2].address`), the same paths the Hub's diagnostics use.
 */
export function validateConfig(fields: Field[], config: Record<string, unknown>): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (fs: Field[], obj: Record<string, unknown>, base: string) => {
    for (const f of fs) {
      const path = pathJoin(base, f.name);
      const present = Object.prototype.hasOwnProperty.call(obj, f.name);
      const value = present ? obj[f.name] : f.hasDefault ? f.default : undefined;
      if (!present && f.required && !f.hasDefault) {
        out.set(path, "required");
        continue;
      }
      const problem = checkValue(f, value);
      if (problem) {
        out.set(path, problem);
        continue;
      }
      if (f.kind === "object" && value && typeof value === "object") {
        walk(f.fields ?? [], value as Record<string, unknown>, path);
      } else if (f.kind === "table" && Array.isArray(value)) {
        value.forEach((row, i) => {
          if (row && typeof row === "object") walk(f.fields ?? [], row as Record<string, unknown>, pathJoin(path, i));
        });
      } else if (f.kind === "list" && Array.isArray(value) && f.item) {
        value.forEach((v, i) => {
          const p = checkValue(f.item!, v);
          if (p) out.set(pathJoin(path, i), p);
        });
      }
    }
  };
  walk(fields, config, "$");
  return out;
}

/** Set `value` at `path` (array of keys and indexes) in an immutable copy of `root`. */
export function setIn<T>(root: T, path: (string | number)[], value: unknown): T {
  if (path.length === 0) return value as T;
  const [head, ...rest] = path;
  if (typeof head === "number") {
    const arr = Array.isArray(root) ? [...root] : [];
    arr[head] = setIn(arr[head], rest, value);
    return arr as T;
  }
  const obj = root && typeof root === "object" && !Array.isArray(root) ? { ...(root as object) } : {};
  if (value === undefined && rest.length === 0) {
    delete (obj as Record<string, unknown>)[head!];
    return obj as T;
  }
  (obj as Record<string, unknown>)[head!] = setIn((obj as Record<string, unknown>)[head!], rest, value);
  return obj as T;
}
