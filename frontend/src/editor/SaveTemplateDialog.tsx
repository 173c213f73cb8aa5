/** Save the flow, or the selected nodes, as a reusable template. */
import { useState } from "react";
import { ApiError, api, errorMessage, unwrap } from "../api/client";
import { isProxusNode } from "../flow/graph";
import { Modal } from "../ui/Modal";
import { toast } from "../util/toast";
import { useEditorStore } from "./store";

export function SaveTemplateDialog({ onClose }: { onClose: () => void }) {
  const store = useEditorStore();
  const s = store.getState();
  const selected = s.nodes.filter((n) => n.selected && isProxusNode(n)).map((n) => n.id);
  const [name, setName] = useState(s.header.name);
  const [description, setDescription] = useState("");
  const [category, setCategory] = useState("custom");
  const [onlySelection, setOnlySelection] = useState(selected.length > 0);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const save = async () => {
    setBusy(true);
    setError(null);
    try {
      const saved = await unwrap(
        api.POST("/api/templates", {
          body: {
            name,
            description,
            category,
            document: store.getState().toDocument() as unknown as Record<string, unknown>,
            node_ids: onlySelection ? selected : null,
          },
        }),
      );
      const errors = saved.diagnostics.filter((d) => d.severity === "error").length;
      toast.success(`Saved template “${saved.template.name}”${errors ? ` (${errors} problems with its defaults)` : ""}`);
      onClose();
    } catch (err) {
      setError(err instanceof ApiError ? errorMessage(err) : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal
      title="Save as template"
      onClose={onClose}
      footer={
        <>
          <button type="button" className="btn ghost" onClick={onClose}>
            Cancel
          </button>
          <button type="button" className="btn primary" disabled={busy || !name.trim()} onClick={save}>
            Save template
          </button>
        </>
      }
    >
      <div className="field">
        <label className="field-label" htmlFor="tpl-save-name">
          Name
        </label>
        <input id="tpl-save-name" className="input" value={name} maxLength={200} onChange={(e) => setName(e.target.value)} />
      </div>
      <div className="field">
        <label className="field-label" htmlFor="tpl-save-desc">
          Description
        </label>
        <textarea id="tpl-save-desc" className="input" rows={2} value={description} onChange={(e) => setDescription(e.target.value)} />
      </div>
      <div className="field">
        <label className="field-label" htmlFor="tpl-save-cat">
          Category
        </label>
        <input
          id="tpl-save-cat"
          className="input"
          value={category}
          pattern="[a-z0-9][a-z0-9 _-]*"
          onChange={(e) => setCategory(e.target.value.toLowerCase())}
        />
      </div>
      {selected.length ? (
        <label className="toggle">
          <input type="checkbox" checked={onlySelection} onChange={(e) => setOnlySelection(e.target.checked)} />
          <span className="toggle-track" />
          <span className="toggle-label">Only the {selected.length} selected nodes</span>
        </label>
      ) : null}
      {error ? <p className="field-error">{error}</p> : null}
    </Modal>
  );
}
