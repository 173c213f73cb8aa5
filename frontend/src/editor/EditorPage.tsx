/** The flow editor: top bar, palette, canvas, inspector, versions and deploy panels, dialogs. */
import { ReactFlowProvider } from "@xyflow/react";
import {
  ArrowLeft,
  BookmarkPlus,
  Bug,
  Download,
  Eye,
  Focus,
  GitCompare,
  Group,
  Keyboard,
  LayoutDashboard,
  Redo2,
  Rocket,
  Save,
  StickyNote,
  Undo2,
} from "lucide-react";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { ApiError, api, errorMessage, request, unwrap } from "../api/client";
import type { FlowDetail, FlowDiff } from "../api/types";
import { navigate } from "../app/router";
import { can, useSession } from "../app/session";
import { UserChip } from "../app/UserChip";
import { specFor, useCatalog } from "../catalog/store";
import { isProxusNode, nodeSize } from "../flow/graph";
import { computeLayout } from "../flow/layout";
import { useFlowStatus } from "../live/useFlowStatus";
import { downloadBlob } from "../ui/format";
import { toast } from "../util/toast";
import { Canvas, type CanvasApi } from "./Canvas";
import { type ConflictInfo, ConflictDialog, SaveDialog } from "./dialogs";
import { DebugPanel } from "./DebugPanel";
import { DeployPanel } from "./DeployPanel";
import { SaveTemplateDialog } from "./SaveTemplateDialog";
import { ShortcutsDialog } from "./Shortcuts";
import { isTyping } from "../util/keys";
import { Inspector } from "./Inspector";
import { expectedNodeSize } from "./nodes";
import { Palette } from "./Palette";
import { EditorContext, type EditorStore, createEditorStore, useEditor } from "./store";
import { useValidation } from "./useValidation";
import { VersionsPanel } from "./VersionsPanel";

function outputKind(type: string, port: string): string | undefined {
  return specFor(useCatalog.getState().byType, type)?.outputs.find((o) => o.name === port)?.kind;
}

function nodeSizeOf(type: string, version: number): { width: number; height: number } | undefined {
  return expectedNodeSize(specFor(useCatalog.getState().byType, type, version));
}

function Problems() {
  const errors = useEditor((s) => s.diagnostics.errors);
  const warnings = useEditor((s) => s.diagnostics.warnings);
  const pending = useEditor((s) => s.diagnosticsRevision < s.revision);
  const selectOnly = useEditor((s) => s.selectOnly);
  if (errors === 0 && warnings === 0) {
    return (
      <span className={`pill ${pending ? "muted" : "ok"}`} data-testid="problems" data-errors="0">
        {pending ? "checking…" : "valid"}
      </span>
    );
  }
  return (
    <button
      type="button"
      className={`pill ${errors ? "bad" : "warn"}`}
      data-testid="problems"
      data-errors={errors}
      onClick={() => selectOnly([])}
      title="Show the problems list"
    >
      {errors ? `${errors} error${errors === 1 ? "" : "s"}` : ""}
      {errors && warnings ? ", " : ""}
      {warnings ? `${warnings} warning${warnings === 1 ? "" : "s"}` : ""}
    </button>
  );
}

function DirtyMarker() {
  const dirty = useEditor((s) => s.dirty);
  const version = useEditor((s) => s.baseVersion);
  return dirty ? (
    <span className="dirty" data-testid="dirty-marker" title={`Changed since version ${version}`}>
      ● unsaved changes
    </span>
  ) : (
    <span className="muted small" data-testid="saved-marker">
      saved · v{version}
    </span>
  );
}

function FlowName({ readOnly }: { readOnly: boolean }) {
  const name = useEditor((s) => s.header.name);
  const setName = useEditor((s) => s.setName);
  const [draft, setDraft] = useState<string | null>(null);
  if (readOnly) return <h1 className="flow-name">{name}</h1>;
  return (
    <input
      className="flow-name-input"
      value={draft ?? name}
      aria-label="Flow name"
      maxLength={200}
      onChange={(e) => setDraft(e.target.value)}
      onBlur={() => {
        if (draft != null && draft.trim() && draft !== name) setName(draft.trim());
        setDraft(null);
      }}
      onKeyDown={(e) => {
        if (e.key === "Enter") (e.target as HTMLInputElement).blur();
        if (e.key === "Escape") {
          setDraft(null);
          (e.target as HTMLInputElement).blur();
        }
      }}
    />
  );
}

function UndoRedo() {
  const canUndo = useEditor((s) => s.past.length > 0);
  const canRedo = useEditor((s) => s.future.length > 0);
  const undo = useEditor((s) => s.undo);
  const redo = useEditor((s) => s.redo);
  return (
    <>
      <button type="button" className="tool" onClick={undo} disabled={!canUndo} title="Undo (Ctrl+Z)" aria-label="Undo">
        <Undo2 size={17} />
      </button>
      <button type="button" className="tool" onClick={redo} disabled={!canRedo} title="Redo (Ctrl+Y)" aria-label="Redo">
        <Redo2 size={17} />
      </button>
    </>
  );
}

type Panel = "inspector" | "versions" | "deploy" | "debug";

function Editor({ detail, store, reload }: { detail: FlowDetail; store: EditorStore; reload: () => Promise<void> }) {
  const role = useSession((s) => s.me?.role);
  const editable = can(role, "editor");
  const flowId = detail.id;
  const canvasApi = useRef<CanvasApi | null>(null);
  const [panel, setPanel] = useState<Panel>("inspector");
  const [saving, setSaving] = useState(false);
  const [saveOpen, setSaveOpen] = useState(false);
  const [conflict, setConflict] = useState<(ConflictInfo & { message_: string }) | null>(null);
  const [versionsKey, setVersionsKey] = useState(0);
  const [deployedVersion, setDeployedVersion] = useState<number | null>(detail.deployed_version ?? null);
  const [layingOut, setLayingOut] = useState(false);
  const [templateOpen, setTemplateOpen] = useState(false);
  const [shortcutsOpen, setShortcutsOpen] = useState(false);
  const baseVersion = useEditor((s) => s.baseVersion);

  useValidation(store, flowId, true);
  useFlowStatus(flowId, deployedVersion != null);

  useEffect(() => {
    const onBeforeUnload = (e: BeforeUnloadEvent) => {
      if (store.getState().dirty) e.preventDefault();
    };
    // Leaving by the browser's back button (a hash change) asks first, too.
    let current = window.location.hash;
    const onHashChange = () => {
      if (window.location.hash === current) return;
      if (store.getState().dirty && !window.confirm("Leave without saving your changes?")) {
        window.history.replaceState(null, "", current);
        return;
      }
      current = window.location.hash;
    };
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "?" && !isTyping(e.target)) setShortcutsOpen(true);
    };
    window.addEventListener("beforeunload", onBeforeUnload);
    window.addEventListener("hashchange", onHashChange, true);
    document.addEventListener("keydown", onKey);
    return () => {
      window.removeEventListener("beforeunload", onBeforeUnload);
      window.removeEventListener("hashchange", onHashChange, true);
      document.removeEventListener("keydown", onKey);
    };
  }, [store]);

  const doSave = useCallback(
    async (message: string, baseOverride?: number) => {
      const s = store.getState();
      setSaving(true);
      try {
        const info = await unwrap(
          api.PUT("/api/flows/{flow_id}", {
            params: { path: { flow_id: flowId } },
            body: { document: s.toDocument(), message, base_version: baseOverride ?? s.baseVersion },
          }),
        );
        store.getState().markSaved(info.version);
        setSaveOpen(false);
        setConflict(null);
        setVersionsKey((k) => k + 1);
        toast.success(`Saved version ${info.version}`);
      } catch (err) {
        if (err instanceof ApiError && err.status === 409 && err.body.extra) {
          const x = err.body.extra as Record<string, unknown>;
          setSaveOpen(false);
          setConflict({
            message: err.message,
            latest: Number(x.latest_version),
            author: x.author as string | undefined,
            at: x.at as string | undefined,
            theirMessage: x.message as string | undefined,
            diff: x.diff as FlowDiff | undefined,
            message_: message,
          });
        } else {
          toast.error(`Not saved: ${errorMessage(err)}`);
        }
      } finally {
        setSaving(false);
      }
    },
    [flowId, store],
  );

  const openSave = useCallback(() => {
    if (!editable) return;
    if (!store.getState().dirty) {
      toast.info("No changes to save");
      return;
    }
    setSaveOpen(true);
  }, [editable, store]);

  const exportFlow = async () => {
    try {
      const s = store.getState();
      const response = await request<Response>(
        "GET",
        `/api/flows/${encodeURIComponent(flowId)}/export?version=${s.baseVersion}`,
        undefined,
        { raw: true },
      );
      const blob = await response.blob();
      downloadBlob(blob, `${flowId}-v${s.baseVersion}.flow.json`);
      if (s.dirty) toast.info(`Exported the saved version ${s.baseVersion} (unsaved changes are not in the file)`);
    } catch (err) {
      toast.error(errorMessage(err));
    }
  };

  const autoLayout = async () => {
    const s = store.getState();
    const byType = useCatalog.getState().byType;
    const selected = new Set(s.selectedNodes);
    const pick = s.nodes.filter(isProxusNode).filter((n) => selected.size < 2 || selected.has(n.id));
    if (pick.length === 0) return;
    setLayingOut(true);
    try {
      const origin = {
        x: Math.min(...pick.map((n) => n.position.x)),
        y: Math.min(...pick.map((n) => n.position.y)),
      };
      const positions = await computeLayout(
        pick.map((n) => {
          const spec = specFor(byType, n.data.type, n.data.typeVersion);
          return {
            id: n.id,
            ...nodeSize(n),
            inputs: spec?.inputs.map((p) => p.name) ?? [],
            outputs: spec?.outputs.map((p) => p.name) ?? [],
          };
        }),
        s.edges.map((e) => ({
          id: e.id,
          source: e.source,
          sourcePort: e.sourceHandle ?? "out",
          target: e.target,
          targetPort: e.targetHandle ?? "in",
        })),
        origin,
      );
      store.getState().applyPositions(positions);
      window.setTimeout(() => canvasApi.current?.fit(), 50);
    } catch (err) {
      toast.error(`Layout failed: ${errorMessage(err)}`);
    } finally {
      setLayingOut(false);
    }
  };

  const readOnly = !editable;
  return (
    <div className={`editor ${readOnly ? "read-only" : ""}`} data-testid="editor" data-flow-id={flowId}>
      <header className="editor-top">
        <button
          type="button"
          className="tool"
          title="All flows"
          aria-label="Back to flows"
          onClick={() => {
            if (!store.getState().dirty || window.confirm("Leave without saving your changes?")) {
              store.getState().markSaved(store.getState().baseVersion);
              navigate("/flows");
            }
          }}
        >
          <ArrowLeft size={18} />
        </button>
        <FlowName readOnly={readOnly} />
        <DirtyMarker />
        <Problems />
        {deployedVersion ? (
          <span className="pill info" title="Deployed version">
            running v{deployedVersion}
          </span>
        ) : null}
        {readOnly ? (
          <span className="pill muted" data-testid="read-only">
            <Eye size={13} /> read-only
          </span>
        ) : null}
        <div className="spacer" />
        <div className="toolbar" role="toolbar" aria-label="Editor tools">
          {editable ? <UndoRedo /> : null}
          {editable ? (
            <>
              <button type="button" className="tool" onClick={autoLayout} disabled={layingOut} title="Auto-layout (selection, or all)" aria-label="Auto-layout">
                <LayoutDashboard size={17} />
              </button>
              <button type="button" className="tool" onClick={() => canvasApi.current?.addComment()} title="Add a note" aria-label="Add a note">
                <StickyNote size={17} />
              </button>
              <button type="button" className="tool" onClick={() => store.getState().groupSelection("Group")} title="Group the selection (Ctrl+G)" aria-label="Group">
                <Group size={17} />
              </button>
            </>
          ) : null}
          <button type="button" className="tool" onClick={() => canvasApi.current?.fit()} title="Fit to screen (F)" aria-label="Fit to screen">
            <Focus size={17} />
          </button>
          <button type="button" className="tool" onClick={() => setShortcutsOpen(true)} title="Keyboard shortcuts (?)" aria-label="Keyboard shortcuts">
            <Keyboard size={17} />
          </button>
          <span className="tool-sep" />
          <button type="button" className="tool" onClick={exportFlow} title="Download the flow as a JSON file" aria-label="Export" data-testid="export">
            <Download size={17} />
          </button>
          {editable ? (
            <button type="button" className="tool" onClick={() => setTemplateOpen(true)} title="Save as template" aria-label="Save as template">
              <BookmarkPlus size={17} />
            </button>
          ) : null}
          <button
            type="button"
            className={`tool ${panel === "debug" ? "on" : ""}`}
            onClick={() => setPanel(panel === "debug" ? "inspector" : "debug")}
            title="Live debug"
            aria-label="Debug"
            data-testid="debug"
          >
            <Bug size={17} />
          </button>
          <button
            type="button"
            className={`tool ${panel === "versions" ? "on" : ""}`}
            onClick={() => setPanel(panel === "versions" ? "inspector" : "versions")}
            title="Version history"
            aria-label="Versions"
            data-testid="versions"
          >
            <GitCompare size={17} />
          </button>
          {editable ? (
            <>
              <button type="button" className="btn primary" onClick={openSave} disabled={saving} data-testid="save">
                <Save size={15} /> Save
              </button>
              <button
                type="button"
                className={`btn ${panel === "deploy" ? "on" : ""}`}
                onClick={() => setPanel(panel === "deploy" ? "inspector" : "deploy")}
                data-testid="deploy"
              >
                <Rocket size={15} /> Deploy
              </button>
            </>
          ) : null}
        </div>
        <span className="tool-sep" />
        <UserChip compact />
      </header>
      <div className="editor-main">
        {editable ? <Palette onAdd={(entry) => canvasApi.current?.addAtCenter(entry)} /> : null}
        <Canvas onSave={openSave} apiRef={canvasApi} />
        {panel === "inspector" ? <Inspector /> : null}
        {panel === "versions" ? (
          <VersionsPanel
            flowId={flowId}
            canEdit={editable}
            refreshKey={versionsKey}
            onClose={() => setPanel("inspector")}
            onRolledBack={() => {
              void reload().then(() => setVersionsKey((k) => k + 1));
            }}
          />
        ) : null}
        {panel === "debug" ? <DebugPanel flowId={flowId} version={baseVersion} onClose={() => setPanel("inspector")} /> : null}
        {panel === "deploy" && editable ? (
          <DeployPanel
            flowId={flowId}
            deployedVersion={deployedVersion}
            onClose={() => setPanel("inspector")}
            onDeployed={(d) => {
              if (d.state === "applied" && d.version) setDeployedVersion(d.version);
              if (d.action === "undeploy" && d.state !== "failed") setDeployedVersion(null);
            }}
          />
        ) : null}
      </div>
      {shortcutsOpen ? <ShortcutsDialog onClose={() => setShortcutsOpen(false)} /> : null}
      {templateOpen ? <SaveTemplateDialog onClose={() => setTemplateOpen(false)} /> : null}
      {saveOpen ? (
        <SaveDialog
          busy={saving}
          nextVersion={store.getState().baseVersion + 1}
          onClose={() => setSaveOpen(false)}
          onSave={(m) => void doSave(m)}
        />
      ) : null}
      {conflict ? (
        <ConflictDialog
          conflict={conflict}
          onClose={() => setConflict(null)}
          onReload={() => {
            setConflict(null);
            void reload();
          }}
          onOverwrite={() => void doSave(conflict.message_, conflict.latest)}
        />
      ) : null}
    </div>
  );
}

export function EditorPage({ flowId }: { flowId: string }) {
  const role = useSession((s) => s.me?.role);
  const catalogStatus = useCatalog((s) => s.status);
  const catalogError = useCatalog((s) => s.error);
  const loadCatalog = useCatalog((s) => s.load);
  const [detail, setDetail] = useState<FlowDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  const store = useMemo(
    () => createEditorStore({ id: flowId, name: "", version: 1 }, !can(role, "editor")),
    // one store per open flow
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [flowId],
  );

  useEffect(() => {
    store.getState().setReadOnly(!can(role, "editor"));
  }, [role, store]);

  const load = useCallback(async () => {
    try {
      const d = await unwrap(api.GET("/api/flows/{flow_id}", { params: { path: { flow_id: flowId } } }));
      await useCatalog.getState().load();
      store.getState().load(d.document, d.latest_version, outputKind, nodeSizeOf);
      setDetail(d);
      setError(null);
    } catch (err) {
      setError(errorMessage(err));
    }
  }, [flowId, store]);

  useEffect(() => {
    void loadCatalog();
    void load();
  }, [load, loadCatalog]);

  if (error) {
    return (
      <div className="page-message">
        <p className="field-error">{error}</p>
        <a href="#/flows">Back to the flows</a>
      </div>
    );
  }
  if (!detail || catalogStatus !== "ready") {
    return <div className="page-message muted">{catalogStatus === "error" ? catalogError : "Loading the flow…"}</div>;
  }
  return (
    <EditorContext.Provider value={store}>
      <ReactFlowProvider>
        <Editor detail={detail} store={store} reload={load} />
      </ReactFlowProvider>
    </EditorContext.Provider>
  );
}
