/**
 * Version history: pick a version to see on the canvas what changed since (added, changed and
 * removed nodes highlighted), then roll back to it if you like.
 */
import { History, RotateCcw, X } from "lucide-react";
import { useCallback, useEffect, useState } from "react";
import { api, errorMessage, unwrap } from "../api/client";
import type { VersionInfo } from "../api/types";
import { diffDocuments, diffMarks, wireMarks, type DocumentDiff } from "../flow/diff";
import { toCanvasNode } from "../flow/graph";
import { timeAgo, dateTime } from "../ui/format";
import { toast } from "../util/toast";
import { useEditor, useEditorStore } from "./store";

export function VersionsPanel({
  flowId,
  canEdit,
  onClose,
  onRolledBack,
  refreshKey,
}: {
  flowId: string;
  canEdit: boolean;
  onClose: () => void;
  onRolledBack: () => void;
  refreshKey: number;
}) {
  const store = useEditorStore();
  const baseVersion = useEditor((s) => s.baseVersion);
  const compare = useEditor((s) => s.compare);
  const [versions, setVersions] = useState<VersionInfo[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [diff, setDiff] = useState<DocumentDiff | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    let live = true;
    unwrap(api.GET("/api/flows/{flow_id}/versions", { params: { path: { flow_id: flowId }, query: { limit: 200 } } })).then(
      (v) => live && setVersions(v),
      (e: unknown) => live && setError(errorMessage(e)),
    );
    return () => {
      live = false;
    };
  }, [flowId, refreshKey]);

  // Leaving the panel ends the comparison.
  useEffect(() => () => store.getState().setCompare(null), [store]);

  const show = useCallback(
    async (version: number) => {
      try {
        const detail = await unwrap(
          api.GET("/api/flows/{flow_id}/versions/{version}", { params: { path: { flow_id: flowId, version } } }),
        );
        const current = store.getState().toDocument();
        const d = diffDocuments(detail.document, current);
        setDiff(d);
        store.getState().setCompare({
          version,
          marks: diffMarks(d),
          wireMarks: wireMarks(d),
          ghosts: d.removed.map((n) => ({ ...toCanvasNode(n), id: `ghost:${n.id}` })),
        });
      } catch (e) {
        toast.error(errorMessage(e));
      }
    },
    [flowId, store],
  );

  const rollback = async (version: number) => {
    const s = store.getState();
    if (s.dirty && !window.confirm("You have unsaved changes. Roll back anyway and lose them?")) return;
    setBusy(true);
    try {
      const info = await unwrap(
        api.POST("/api/flows/{flow_id}/rollback", {
          params: { path: { flow_id: flowId } },
          body: { version, message: `rolled back to version ${version}`, base_version: s.baseVersion },
        }),
      );
      toast.success(`Rolled back: version ${info.version} equals version ${version}`);
      store.getState().setCompare(null);
      setDiff(null);
      onRolledBack();
    } catch (e) {
      toast.error(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <aside className="side-panel versions" aria-label="Version history" data-testid="versions-panel">
      <div className="side-head">
        <History size={16} />
        <span>Versions</span>
        <button type="button" className="icon-btn" onClick={onClose} aria-label="Close versions">
          <X size={16} />
        </button>
      </div>
      {error ? <div className="field-error">{error}</div> : null}
      {compare && diff ? (
        <div className="compare-box" data-testid="compare-box">
          <div className="compare-title">
            Canvas compared with version {compare.version}
            <button
              type="button"
              className="icon-btn"
              onClick={() => {
                store.getState().setCompare(null);
                setDiff(null);
              }}
              aria-label="End comparison"
            >
              <X size={14} />
            </button>
          </div>
          {diff.identical ? (
            <p className="muted">No difference.</p>
          ) : (
            <div className="legend">
              <span className="lg lg-added">{diff.added.length} added</span>
              <span className="lg lg-changed">{diff.changed.filter((c) => c.fields.some((f) => f !== "position")).length} changed</span>
              <span className="lg lg-removed">{diff.removed.length} removed</span>
              <span className="muted small">
                wires +{diff.addedWires.length} −{diff.removedWires.length}
              </span>
            </div>
          )}
          <ul className="diff-list">
            {diff.changed
              .filter((c) => c.fields.some((f) => f !== "position"))
              .slice(0, 12)
              .map((c) => (
                <li key={c.node.id} className="diff-changed">
                  {c.node.label || c.node.id}: {c.fields.join(", ")}
                </li>
              ))}
          </ul>
          {canEdit && compare.version !== baseVersion ? (
            <button type="button" className="btn" disabled={busy} onClick={() => rollback(compare.version)} data-testid="rollback">
              <RotateCcw size={15} /> Roll back to version {compare.version}
            </button>
          ) : null}
        </div>
      ) : null}
      <ol className="version-list">
        {(versions ?? []).map((v) => (
          <li
            key={v.version}
            className={`${v.version === baseVersion ? "current" : ""} ${compare?.version === v.version ? "active" : ""}`}
          >
            <button type="button" className="version-btn" onClick={() => show(v.version)} data-testid={`version-${v.version}`}>
              <span className="version-no">v{v.version}</span>
              <span className="version-msg">{v.message || <em className="muted">no message</em>}</span>
              <span className="version-meta" title={dateTime(v.at)}>
                {v.author} · {timeAgo(v.at)} · {v.node_count} nodes
              </span>
            </button>
          </li>
        ))}
        {versions && versions.length === 0 ? <li className="muted">No versions yet.</li> : null}
        {!versions && !error ? <li className="muted">Loading…</li> : null}
      </ol>
    </aside>
  );
}
