/** The node palette, built from the catalog: grouped by category, searchable, drag onto the canvas. */
import { ChevronDown, ChevronRight, Search } from "lucide-react";
import { memo, useMemo, useState } from "react";
import { NodeIcon } from "../catalog/icons";
import { useCatalog } from "../catalog/store";
import { CATEGORY_ORDER, CATEGORY_TITLES, type CatalogEntry } from "../catalog/types";

export const DRAG_MIME = "application/x-proxus-node";

/** Catalog entries matching a query (title, type, description, category), best matches first. */
export function searchCatalog(entries: CatalogEntry[], query: string): CatalogEntry[] {
  const q = query.trim().toLowerCase();
  const latest = new Map<string, CatalogEntry>();
  for (const e of entries) {
    const cur = latest.get(e.type);
    if (!cur || cur.version < e.version) latest.set(e.type, e);
  }
  const all = [...latest.values()];
  if (!q) return all;
  const scored: [number, CatalogEntry][] = [];
  for (const e of all) {
    const title = e.title.toLowerCase();
    const type = e.type.toLowerCase();
    let score = 0;
    if (title === q || type === q) score = 100;
    else if (title.startsWith(q)) score = 80;
    else if (type.startsWith(q) || type.split(".").some((p) => p.startsWith(q))) score = 70;
    else if (title.includes(q)) score = 60;
    else if (type.includes(q)) score = 50;
    else if (e.category.toLowerCase().startsWith(q)) score = 40;
    else if (e.description.toLowerCase().includes(q)) score = 20;
    if (score) scored.push([score, e]);
  }
  return scored.sort((a, b) => b[0] - a[0] || a[1].title.localeCompare(b[1].title)).map(([, e]) => e);
}

export function groupByCategory(entries: CatalogEntry[]): [string, CatalogEntry[]][] {
  const groups = new Map<string, CatalogEntry[]>();
  for (const e of entries) {
    const list = groups.get(e.category) ?? [];
    list.push(e);
    groups.set(e.category, list);
  }
  const order = (c: string) => {
    const i = (CATEGORY_ORDER as string[]).indexOf(c);
    return i < 0 ? CATEGORY_ORDER.length : i;
  };
  return [...groups.entries()].sort((a, b) => order(a[0]) - order(b[0]) || a[0].localeCompare(b[0]));
}

const PaletteItem = memo(function PaletteItem({ entry, onAdd }: { entry: CatalogEntry; onAdd: (e: CatalogEntry) => void }) {
  return (
    <div
      className={`palette-item cat-${entry.category}`}
      draggable
      role="button"
      tabIndex={0}
      data-testid={`palette-${entry.type}`}
      title={`${entry.description}\nDrag onto the canvas, or click to add.`}
      onDragStart={(ev) => {
        ev.dataTransfer.setData(DRAG_MIME, entry.type);
        ev.dataTransfer.setData("text/plain", entry.type);
        ev.dataTransfer.effectAllowed = "copy";
      }}
      onClick={() => onAdd(entry)}
      onKeyDown={(ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          onAdd(entry);
        }
      }}
    >
      <span className="palette-icon">
        <NodeIcon name={entry.icon} size={16} />
      </span>
      <span className="palette-text">
        <span className="palette-title">{entry.title}</span>
        <span className="palette-desc">{entry.description}</span>
      </span>
    </div>
  );
});

export function Palette({ onAdd }: { onAdd: (entry: CatalogEntry) => void }) {
  const entries = useCatalog((s) => s.entries);
  const [query, setQuery] = useState("");
  const [collapsed, setCollapsed] = useState<Record<string, boolean>>({});
  const groups = useMemo(() => groupByCategory(searchCatalog(entries, query)), [entries, query]);
  return (
    <aside className="palette" aria-label="Node palette">
      <div className="palette-search">
        <Search size={15} aria-hidden="true" />
        <input
          type="search"
          placeholder="Search nodes"
          value={query}
          onChange={(e) => setQuery(e.target.value)}
          aria-label="Search nodes"
          onKeyDown={(e) => e.stopPropagation()}
        />
      </div>
      <div className="palette-list">
        {groups.map(([category, list]) => {
          const closed = collapsed[category] && !query;
          return (
            <section key={category} className="palette-group">
              <button
                type="button"
                className="palette-group-head"
                onClick={() => setCollapsed((c) => ({ ...c, [category]: !c[category] }))}
                aria-expanded={!closed}
              >
                {closed ? <ChevronRight size={14} /> : <ChevronDown size={14} />}
                <span className={`cat-dot cat-${category}`} />
                {CATEGORY_TITLES[category] ?? category}
                <span className="count">{list.length}</span>
              </button>
              {!closed ? list.map((e) => <PaletteItem key={e.type} entry={e} onAdd={onAdd} />) : null}
            </section>
          );
        })}
        {groups.length === 0 ? <div className="muted pad">No node matches “{query}”.</div> : null}
      </div>
      <div className="palette-foot muted">
        Tip: press <kbd>Tab</kbd> or double-click the canvas to add a node at the cursor.
      </div>
    </aside>
  );
}
