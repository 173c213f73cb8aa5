/** Quick-add: type to find a node type and drop it at the cursor (Tab, "/" or double-click). */
import { useEffect, useMemo, useRef, useState } from "react";
import { NodeIcon } from "../catalog/icons";
import { useCatalog } from "../catalog/store";
import { CATEGORY_TITLES, type CatalogEntry } from "../catalog/types";
import { searchCatalog } from "./Palette";

export function QuickAdd({
  at,
  hint,
  filter,
  onPick,
  onClose,
}: {
  at: { x: number; y: number };
  hint?: string;
  filter?: (e: CatalogEntry) => boolean;
  onPick: (entry: CatalogEntry) => void;
  onClose: () => void;
}) {
  const entries = useCatalog((s) => s.entries);
  const [query, setQuery] = useState("");
  const [index, setIndex] = useState(0);
  const input = useRef<HTMLInputElement>(null);
  const results = useMemo(() => {
    const found = searchCatalog(entries, query);
    return filter ? [...found.filter(filter), ...found.filter((e) => !filter(e))] : found;
  }, [entries, query, filter]);
  useEffect(() => input.current?.focus(), []);
  useEffect(() => setIndex(0), [query]);
  const style = {
    left: Math.min(at.x, window.innerWidth - 340),
    top: Math.min(at.y, window.innerHeight - 380),
  };
  return (
    <div className="quickadd-backdrop" onMouseDown={onClose}>
      <div
        className="quickadd"
        style={style}
        onMouseDown={(e) => e.stopPropagation()}
        role="dialog"
        aria-label="Add a node"
        data-testid="quick-add"
      >
        <input
          ref={input}
          className="input"
          placeholder="Add a node…"
          value={query}
          onChange={(e) => setQuery(e.target.value)}
          onKeyDown={(e) => {
            e.stopPropagation();
            if (e.key === "Escape") onClose();
            else if (e.key === "ArrowDown") {
              e.preventDefault();
              setIndex((i) => Math.min(i + 1, results.length - 1));
            } else if (e.key === "ArrowUp") {
              e.preventDefault();
              setIndex((i) => Math.max(i - 1, 0));
            } else if (e.key === "Enter" || e.key === "Tab") {
              e.preventDefault();
              const pick = results[index];
              if (pick) onPick(pick);
            }
          }}
        />
        {hint ? <div className="quickadd-hint">{hint}</div> : null}
        <ul className="quickadd-list" role="listbox">
          {results.slice(0, 40).map((e, i) => (
            <li
              key={e.type}
              role="option"
              aria-selected={i === index}
              className={i === index ? "active" : ""}
              onMouseEnter={() => setIndex(i)}
              onClick={() => onPick(e)}
            >
              <span className={`palette-icon cat-${e.category}`}>
                <NodeIcon name={e.icon} size={15} />
              </span>
              <span className="qa-title">{e.title}</span>
              <span className="qa-cat">{CATEGORY_TITLES[e.category] ?? e.category}</span>
            </li>
          ))}
          {results.length === 0 ? <li className="muted">Nothing matches</li> : null}
        </ul>
      </div>
    </div>
  );
}
