/** The node catalog, loaded once per session and shared by the palette, nodes and forms. */
import { create } from "zustand";
import { request } from "../api/client";
import { configFields, type Field } from "../schema/jsonschema";
import type { CatalogEntry, ExpressionHelp } from "./types";

interface CatalogState {
  entries: CatalogEntry[];
  byType: Map<string, CatalogEntry>;
  expressions: ExpressionHelp | null;
  status: "idle" | "loading" | "ready" | "error";
  error: string | null;
  load: () => Promise<void>;
}

export const useCatalog = create<CatalogState>((set, get) => ({
  entries: [],
  byType: new Map(),
  expressions: null,
  status: "idle",
  error: null,
  load: () => {
    if (get().status === "ready") return Promise.resolve();
    loading ??= (async () => {
    set({ status: "loading", error: null });
    try {
      const [entries, expressions] = await Promise.all([
        request<CatalogEntry[]>("GET", "/api/catalog"),
        request<ExpressionHelp>("GET", "/api/catalog/expressions").catch(() => null),
      ]);
      set({ entries, byType: indexCatalog(entries), expressions, status: "ready" });
    } catch (err) {
      set({ status: "error", error: err instanceof Error ? err.message : String(err) });
    } finally {
      loading = null;
    }
    })();
    return loading;
  },
}));

let loading: Promise<void> | null = null;

/** type → entry of its highest version; "type@version" → that version. */
export function indexCatalog(entries: CatalogEntry[]): Map<string, CatalogEntry> {
  const map = new Map<string, CatalogEntry>();
  for (const e of entries) {
    map.set(`${e.type}@${e.version}`, e);
    const current = map.get(e.type);
    if (!current || current.version < e.version) map.set(e.type, e);
  }
  return map;
}

export function specFor(byType: Map<string, CatalogEntry>, type: string, version?: number): CatalogEntry | undefined {
  return (version != null ? byType.get(`${type}@${version}`) : undefined) ?? byType.get(type);
}

export function useSpec(type: string, version?: number): CatalogEntry | undefined {
  return useCatalog((s) => specFor(s.byType, type, version));
}

const fieldCache = new WeakMap<CatalogEntry, Field[]>();
/** The config form fields of a node type (computed once per catalog entry). */
export function fieldsOf(spec: CatalogEntry): Field[] {
  let fields = fieldCache.get(spec);
  if (!fields) {
    fields = configFields(spec.config_schema);
    fieldCache.set(spec, fields);
  }
  return fields;
}
