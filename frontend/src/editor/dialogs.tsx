/** Save (with a message) and the 409 conflict dialog that shows what changed meanwhile. */
import { useState } from "react";
import type { FlowDiff } from "../api/types";
import { Modal } from "../ui/Modal";
import { dateTime } from "../ui/format";

export function SaveDialog({
  onSave,
  onClose,
  busy,
  nextVersion,
}: {
  onSave: (message: string) => void;
  onClose: () => void;
  busy: boolean;
  nextVersion: number;
}) {
  const [message, setMessage] = useState("");
  return (
    <Modal
      title={`Save version ${nextVersion}`}
      onClose={onClose}
      testId="save-dialog"
      footer={
        <>
          <button type="button" className="btn ghost" onClick={onClose}>
            Cancel
          </button>
          <button type="button" className="btn primary" disabled={busy} onClick={() => onSave(message)} data-testid="save-confirm">
            {busy ? "Saving…" : "Save"}
          </button>
        </>
      }
    >
      <label className="field-label" htmlFor="save-message">
        What changed?
      </label>
      <textarea
        id="save-message"
        className="input"
        rows={3}
        maxLength={2000}
        autoFocus
        placeholder="e.g. Scale pressure to bar, average per minute"
        value={message}
        onChange={(e) => setMessage(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey) {
            e.preventDefault();
            onSave(message);
          }
        }}
      />
      <div className="field-help">Enter saves; the message appears in the version history.</div>
    </Modal>
  );
}

export function DiffSummary({ diff }: { diff: FlowDiff }) {
  if (diff.identical) return <p className="muted">The versions are identical.</p>;
  const rows: { cls: string; text: string }[] = [];
  for (const n of diff.added_nodes) rows.push({ cls: "added", text: `added ${n.label || n.id} (${n.type})` });
  for (const n of diff.removed_nodes) rows.push({ cls: "removed", text: `removed ${n.label || n.id} (${n.type})` });
  for (const n of diff.changed_nodes) {
    const what = n.fields
      .map((f) => (f === "config" && n.config_paths?.length ? `config ${n.config_paths.slice(0, 3).join(", ")}` : f))
      .join(", ");
    rows.push({ cls: "changed", text: `changed ${n.label || n.id}: ${what}` });
  }
  for (const w of diff.added_wires) rows.push({ cls: "added", text: `wire ${w.source}.${w.source_port} → ${w.target}.${w.target_port}` });
  for (const w of diff.removed_wires) rows.push({ cls: "removed", text: `wire ${w.source}.${w.source_port} → ${w.target}.${w.target_port} removed` });
  for (const o of diff.other ?? []) rows.push({ cls: "changed", text: `${o} changed` });
  return (
    <ul className="diff-list" data-testid="diff-list">
      {rows.map((r, i) => (
        <li key={i} className={`diff-${r.cls}`}>
          {r.text}
        </li>
      ))}
    </ul>
  );
}

export interface ConflictInfo {
  message: string;
  latest: number;
  author?: string;
  at?: string;
  theirMessage?: string;
  diff?: FlowDiff;
}

export function ConflictDialog({
  conflict,
  onReload,
  onOverwrite,
  onClose,
}: {
  conflict: ConflictInfo;
  onReload: () => void;
  onOverwrite: () => void;
  onClose: () => void;
}) {
  return (
    <Modal
      title="Someone saved this flow meanwhile"
      onClose={onClose}
      wide
      testId="conflict-dialog"
      footer={
        <>
          <button type="button" className="btn ghost" onClick={onClose}>
            Keep editing
          </button>
          <button type="button" className="btn" onClick={onReload}>
            Discard mine, load version {conflict.latest}
          </button>
          <button type="button" className="btn danger" onClick={onOverwrite}>
            Save mine over it
          </button>
        </>
      }
    >
      <p>
        Version {conflict.latest} was saved
        {conflict.author ? ` by ${conflict.author}` : ""}
        {conflict.at ? ` at ${dateTime(conflict.at)}` : ""}
        {conflict.theirMessage ? ` (“${conflict.theirMessage}”)` : ""}. Their changes since the version you started from:
      </p>
      {conflict.diff ? <DiffSummary diff={conflict.diff} /> : <p className="muted">{conflict.message}</p>}
      <p className="muted">
        Saving yours over it makes a new version with your canvas exactly as it is: their changes listed above are
        then undone (they stay in the history).
      </p>
    </Modal>
  );
}
