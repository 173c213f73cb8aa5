/**
 * The canvas: React Flow over the open flow's store. Drag from the palette, quick-add at the
 * cursor, wires only between compatible ports, keyboard shortcuts, copy/paste as JSON.
 */
import {
  Background,
  BackgroundVariant,
  type Connection,
  Controls,
  type Edge,
  type FinalConnectionState,
  MiniMap,
  type Node,
  ReactFlow,
  type Viewport,
  type XYPosition,
  getViewportForBounds,
  useReactFlow,
  useStore as useFlowStore,
} from "@xyflow/react";
import {
  type DragEvent,
  type MouseEvent as ReactMouseEvent,
  useCallback,
  useEffect,
  useLayoutEffect,
  useMemo,
  useRef,
  useState,
} from "react";
import { specFor, useCatalog } from "../catalog/store";
import type { CatalogEntry, PortKind } from "../catalog/types";
import { copySelection, parseClipboard } from "../flow/clipboard";
import { checkConnection, firstCompatible } from "../flow/connect";
import { type CanvasNode, NODE_HEIGHT, NODE_WIDTH, type ProxusNode, type Wire, boundsOf, isProxusNode } from "../flow/graph";
import { isTyping, mod } from "../util/keys";
import { toast } from "../util/toast";
import { FarContext, NODE_TYPES } from "./nodes";
import { DRAG_MIME } from "./Palette";
import { QuickAdd } from "./QuickAdd";
import { useEditor, useEditorStore } from "./store";

const CATEGORY_COLOURS: Record<string, string> = {
  device: "#2f6fb0",
  transform: "#3d8b6d",
  window: "#7a5cb8",
  analytics: "#c2771c",
  udf: "#5b6472",
  sink: "#a34a5a",
};

interface QuickAddState {
  screen: XYPosition;
  flow: XYPosition;
  connectFrom?: { node: string; port: string; kind: PortKind };
}

export interface CanvasApi {
  fit: () => void;
  addAtCenter: (entry: CatalogEntry) => void;
  openQuickAdd: () => void;
  addComment: () => void;
}

const LARGE_FLOW = 250;

// Props of <ReactFlow> are copied into its store whenever their identity changes, and every store
// update runs every node's, handle's and wire's selector: constants live out here, callbacks are
// memoised, so a drag step (new `nodes`) is the only update per frame.
const FIT_VIEW_OPTIONS = { padding: 0.15, maxZoom: 1.1 };
const DEFAULT_VIEWPORT: Viewport = { x: 40, y: 40, zoom: 1 };
const MIN_ZOOM = 0.05;
/** Below this zoom nodes are drawn as plain boxes (level of detail). */
const FAR_ZOOM = 0.45;
const MULTI_SELECTION_KEYS = ["Meta", "Control", "Shift"];
const ZOOM_KEYS = ["Meta", "Control"];
const PAN_BUTTONS = [1, 2];
const SNAP_GRID: [number, number] = [8, 8];
const PRO_OPTIONS = { hideAttribution: true };

/** Minimap colour of a node (stable: a new function would re-render every minimap node). */
function miniMapColour(n: Node): string {
  if (n.type === "frame") return "rgba(120,140,170,0.15)";
  if (n.type === "comment") return "#f3e6a3";
  const spec = (n as ProxusNode).data?.type ? specFor(useCatalog.getState().byType, (n as ProxusNode).data.type) : undefined;
  return CATEGORY_COLOURS[spec?.category ?? ""] ?? "#8894a3";
}

export function Canvas({ onSave, apiRef }: { onSave: () => void; apiRef?: React.MutableRefObject<CanvasApi | null> }) {
  const store = useEditorStore();
  const nodes = useEditor((s) => s.nodes);
  const edges = useEditor((s) => s.edges);
  const readOnly = useEditor((s) => s.readOnly);
  const byEdge = useEditor((s) => s.diagnostics.byEdge);
  const compare = useEditor((s) => s.compare);
  const onNodesChange = useEditor((s) => s.onNodesChange);
  const onEdgesChange = useEditor((s) => s.onEdgesChange);
  const flow = useReactFlow<CanvasNode, Wire>();
  const wrapper = useRef<HTMLDivElement>(null);
  const pointer = useRef<{ client: XYPosition; inside: boolean }>({ client: { x: 0, y: 0 }, inside: false });
  const connecting = useRef<{ nodeId: string; handleId: string | null; handleType: string | null } | null>(null);
  const [quickAdd, setQuickAdd] = useState<QuickAddState | null>(null);

  const specOfNode = useCallback(
    (id: string) => {
      const n = store.getState().nodes.find((x) => x.id === id);
      if (!n || !isProxusNode(n)) return undefined;
      return specFor(useCatalog.getState().byType, n.data.type, n.data.typeVersion);
    },
    [store],
  );

  const isValidConnection = useCallback(
    (c: Connection | Edge) => checkConnection(c, specOfNode, store.getState().edges).ok,
    [specOfNode, store],
  );

  const onConnect = useCallback(
    (c: Connection) => {
      const verdict = checkConnection(c, specOfNode, store.getState().edges);
      if (verdict.ok) store.getState().connect(c, verdict.kind);
      else toast.error(`Cannot connect: ${verdict.reason}`);
    },
    [specOfNode, store],
  );

  const addEntry = useCallback(
    (entry: CatalogEntry, at: XYPosition, connectFrom?: QuickAddState["connectFrom"], autoWire = false) => {
      const position = { x: at.x - NODE_WIDTH / 2, y: at.y - NODE_HEIGHT / 2 };
      let wire: { node: string; port: string; input: string; kind: string } | undefined;
      if (connectFrom) {
        const input = entry.inputs.find((i) => i.accepts.includes(connectFrom.kind));
        if (input) wire = { node: connectFrom.node, port: connectFrom.port, input: input.name, kind: connectFrom.kind };
      } else if (autoWire) {
        // Quick-add with one node selected: wire it from that node when the ports fit.
        const s = store.getState();
        if (s.selectedNodes.length === 1) {
          const src = s.nodes.find((n) => n.id === s.selectedNodes[0]);
          const spec = src && isProxusNode(src) ? specFor(useCatalog.getState().byType, src.data.type) : undefined;
          const fit = spec ? firstCompatible(spec, entry) : null;
          const kind = spec?.outputs.find((o) => o.name === fit?.output)?.kind ?? "points";
          if (src && fit) wire = { node: src.id, port: fit.output, input: fit.input, kind };
        }
      }
      store.getState().addNode(entry, position, wire);
    },
    [store],
  );

  const openQuickAdd = useCallback(
    (client?: XYPosition, connectFrom?: QuickAddState["connectFrom"]) => {
      if (store.getState().readOnly) return;
      const rect = wrapper.current?.getBoundingClientRect();
      const screen =
        client ??
        (pointer.current.inside
          ? pointer.current.client
          : { x: (rect?.left ?? 0) + (rect?.width ?? 800) / 2, y: (rect?.top ?? 0) + (rect?.height ?? 600) / 2 });
      setQuickAdd({ screen, flow: flow.screenToFlowPosition(screen), connectFrom });
    },
    [flow, store],
  );

  const center = useCallback((): XYPosition => {
    const rect = wrapper.current?.getBoundingClientRect();
    if (!rect) return { x: 0, y: 0 };
    return flow.screenToFlowPosition({ x: rect.left + rect.width / 2, y: rect.top + rect.height / 2 });
  }, [flow]);

  useEffect(() => {
    if (!apiRef) return;
    apiRef.current = {
      fit: () => void flow.fitView({ padding: 0.15, duration: 200 }),
      addAtCenter: (entry) => {
        const c = center();
        // Stagger repeated clicks so nodes do not pile up on one spot.
        const n = store.getState().nodes.length % 6;
        addEntry(entry, { x: c.x + n * 24, y: c.y + n * 24 });
      },
      openQuickAdd: () => openQuickAdd(),
      addComment: () => {
        const c = center();
        store.getState().addComment({ x: c.x - 90, y: c.y - 40 });
      },
    };
  }, [apiRef, flow, center, addEntry, openQuickAdd, store]);

  const onDragOver = useCallback((e: DragEvent) => {
    if (e.dataTransfer.types.includes(DRAG_MIME)) {
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
    }
  }, []);

  const onDrop = useCallback(
    (e: DragEvent) => {
      const type = e.dataTransfer.getData(DRAG_MIME);
      if (!type || store.getState().readOnly) return;
      e.preventDefault();
      const entry = specFor(useCatalog.getState().byType, type);
      if (!entry) return;
      addEntry(entry, flow.screenToFlowPosition({ x: e.clientX, y: e.clientY }));
    },
    [addEntry, flow, store],
  );

  const onConnectStart = useCallback(
    (_: unknown, params: { nodeId: string | null; handleId: string | null; handleType: string | null }) => {
      connecting.current = params.nodeId ? { nodeId: params.nodeId, handleId: params.handleId, handleType: params.handleType } : null;
    },
    [],
  );

  const onConnectEnd = useCallback(
    (event: MouseEvent | TouchEvent, state: FinalConnectionState) => {
      const from = connecting.current;
      connecting.current = null;
      if (!from || state.isValid || from.handleType !== "source" || store.getState().readOnly) return;
      const point0 = "changedTouches" in event ? event.changedTouches[0]! : (event as MouseEvent);
      const under = document.elementFromPoint(point0.clientX, point0.clientY);
      // Dropped on empty canvas (not on a node, a port or a panel): offer the nodes that take it.
      if (!under || !wrapper.current?.contains(under) || under.closest(".react-flow__node, .react-flow__handle, .react-flow__panel")) return;
      const spec = specOfNode(from.nodeId);
      const port = spec?.outputs.find((o) => o.name === (from.handleId ?? "out"));
      if (!port) return;
      const point = "changedTouches" in event ? event.changedTouches[0]! : (event as MouseEvent);
      openQuickAdd({ x: point.clientX, y: point.clientY }, { node: from.nodeId, port: port.name, kind: port.kind });
    },
    [openQuickAdd, specOfNode, store],
  );

  // Keyboard shortcuts (document-level so they work wherever the focus is, except in text fields).
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const s = store.getState();
      if (mod(e) && e.key.toLowerCase() === "s") {
        e.preventDefault();
        onSave();
        return;
      }
      if (isTyping(e.target) || document.querySelector(".modal-backdrop, .quickadd-backdrop")) return;
      const key = e.key.toLowerCase();
      if (mod(e) && key === "z" && !e.shiftKey) {
        e.preventDefault();
        s.undo();
      } else if (mod(e) && (key === "y" || (key === "z" && e.shiftKey))) {
        e.preventDefault();
        s.redo();
      } else if (mod(e) && key === "a") {
        e.preventDefault();
        s.selectAll();
      } else if (mod(e) && key === "g") {
        e.preventDefault();
        if (s.groupSelection("Group")) toast.info("Grouped: double-click the title to rename");
      } else if ((e.key === "Delete" || e.key === "Backspace") && !mod(e)) {
        if (s.selectedNodes.length || s.selectedEdges.length) {
          e.preventDefault();
          s.deleteSelection();
        }
      } else if (key === "f" && !mod(e) && !e.altKey) {
        e.preventDefault();
        void flow.fitView({ padding: 0.15, duration: 200 });
      } else if ((e.key === "Tab" || e.key === "/") && !mod(e) && !e.altKey && !e.shiftKey) {
        // Only from the canvas (or nowhere in particular): Tab still moves focus between controls.
        const target = e.target as HTMLElement | null;
        const onCanvas = !target || target === document.body || !!wrapper.current?.contains(target);
        if (s.readOnly || !onCanvas) return;
        e.preventDefault();
        openQuickAdd();
      } else if (e.key === "Escape") {
        s.selectOnly([]);
      }
    };
    const onCopy = (e: ClipboardEvent) => {
      if (isTyping(e.target) || isTyping(document.activeElement)) return;
      const s = store.getState();
      const payload = copySelection({ nodes: s.nodes, edges: s.edges }, new Set(s.selectedNodes));
      if (!payload) return;
      e.preventDefault();
      e.clipboardData?.setData("text/plain", JSON.stringify(payload, null, 1));
      toast.info(`Copied ${payload.nodes.length} node${payload.nodes.length === 1 ? "" : "s"}`);
    };
    const onCut = (e: ClipboardEvent) => {
      if (isTyping(e.target) || isTyping(document.activeElement) || store.getState().readOnly) return;
      onCopy(e);
      store.getState().deleteSelection();
    };
    const onPaste = (e: ClipboardEvent) => {
      if (isTyping(e.target) || isTyping(document.activeElement) || store.getState().readOnly) return;
      const payload = parseClipboard(e.clipboardData?.getData("text/plain") ?? "");
      if (!payload) return;
      e.preventDefault();
      const rect = wrapper.current?.getBoundingClientRect();
      const screen = pointer.current.inside
        ? pointer.current.client
        : { x: (rect?.left ?? 0) + 80, y: (rect?.top ?? 0) + 80 };
      const count = store.getState().paste(payload, flow.screenToFlowPosition(screen));
      if (count) toast.info(`Pasted ${count} node${count === 1 ? "" : "s"}`);
    };
    document.addEventListener("keydown", onKey);
    document.addEventListener("copy", onCopy);
    document.addEventListener("cut", onCut);
    document.addEventListener("paste", onPaste);
    return () => {
      document.removeEventListener("keydown", onKey);
      document.removeEventListener("copy", onCopy);
      document.removeEventListener("cut", onCut);
      document.removeEventListener("paste", onPaste);
    };
  }, [store, flow, onSave, openQuickAdd]);

  const displayedEdges = useMemo(() => {
    const marks = compare?.wireMarks;
    if (!marks && Object.keys(byEdge).length === 0) return edges;
    return edges.map((e) => {
      const problem = byEdge[e.id];
      const mark = marks?.[e.id];
      if (!problem && !mark) return e;
      const cls = [e.className ?? "", problem ? (problem.some((d) => d.severity === "error") ? "wire-error" : "wire-warning") : "", mark ? `wire-mark-${mark}` : ""]
        .join(" ")
        .trim();
      return { ...e, className: cls, label: problem ? "!" : undefined };
    });
  }, [edges, byEdge, compare]);

  const displayedNodes = useMemo<Node[]>(() => {
    if (!compare?.ghosts.length) return nodes;
    return [...nodes, ...compare.ghosts.map((g): Node => ({ ...g, type: "ghost", draggable: false, selectable: false, connectable: false }))];
  }, [nodes, compare]);

  const large = nodes.length > LARGE_FLOW;
  const [initiallyFilled] = useState(() => nodes.length > 0);
  // A flow opens fitted to the screen. The fitted viewport is worked out here, from the nodes'
  // expected sizes, before React Flow mounts: its first render of the nodes is then at the final
  // zoom and level of detail (fitView still corrects it once the nodes are measured).
  const [initialViewport, setInitialViewport] = useState<Viewport | null>(() => (initiallyFilled ? null : DEFAULT_VIEWPORT));
  useLayoutEffect(() => {
    if (initialViewport) return;
    const rect = wrapper.current?.getBoundingClientRect();
    const bounds = boundsOf(store.getState().nodes);
    setInitialViewport(
      rect && rect.width > 0 && rect.height > 0 && bounds
        ? getViewportForBounds(bounds, rect.width, rect.height, MIN_ZOOM, FIT_VIEW_OPTIONS.maxZoom, FIT_VIEW_OPTIONS.padding)
        : DEFAULT_VIEWPORT,
    );
  }, [initialViewport, store]);
  // Level of detail: zoomed far out, nodes draw as plain boxes (cheaper to build and paint, easier
  // to read). Until React Flow has its viewport, the zoom is the initial one.
  const farNow = useFlowStore((s) => (s.panZoom ? s.transform[2] < FAR_ZOOM : null));
  const far = farNow ?? (initialViewport ? initialViewport.zoom < FAR_ZOOM : false);

  const beginDrag = useCallback(() => store.getState().beginDrag(), [store]);

  const onPaneDoubleClick = (e: ReactMouseEvent) => {
    const target = e.target as HTMLElement;
    if (!target.classList.contains("react-flow__pane")) return;
    openQuickAdd({ x: e.clientX, y: e.clientY });
  };

  return (
    <div
      className={`canvas ${readOnly ? "read-only" : ""} ${far ? "zoomed-out" : ""}`}
      ref={wrapper}
      onMouseMove={(e) => {
        pointer.current = { client: { x: e.clientX, y: e.clientY }, inside: true };
      }}
      onMouseLeave={() => {
        pointer.current.inside = false;
      }}
      onDoubleClick={onPaneDoubleClick}
      data-testid="canvas"
    >
      {initialViewport ? (
        <FarContext.Provider value={far}>
          <ReactFlow<Node, Wire>
            nodes={displayedNodes}
            edges={displayedEdges}
            nodeTypes={NODE_TYPES}
            onNodesChange={onNodesChange as never}
            onEdgesChange={onEdgesChange}
            onConnect={onConnect}
            onConnectStart={onConnectStart}
            onConnectEnd={onConnectEnd}
            isValidConnection={isValidConnection}
            onNodeDragStart={beginDrag}
            onSelectionDragStart={beginDrag}
            onDrop={onDrop}
            onDragOver={onDragOver}
            fitView={initiallyFilled}
            fitViewOptions={FIT_VIEW_OPTIONS}
            defaultViewport={initialViewport}
            minZoom={MIN_ZOOM}
            maxZoom={2.5}
            onlyRenderVisibleElements={large}
            deleteKeyCode={null}
            selectionKeyCode="Shift"
            multiSelectionKeyCode={MULTI_SELECTION_KEYS}
            selectionOnDrag={!readOnly}
            panOnDrag={readOnly ? true : PAN_BUTTONS}
            panOnScroll
            zoomActivationKeyCode={ZOOM_KEYS}
            zoomOnDoubleClick={false}
            nodesDraggable={!readOnly}
            nodesConnectable={!readOnly}
            elementsSelectable
            edgesFocusable={!readOnly}
            connectionRadius={28}
            snapToGrid
            snapGrid={SNAP_GRID}
            proOptions={PRO_OPTIONS}
            elevateEdgesOnSelect
            aria-label="Flow canvas"
          >
            <Background variant={BackgroundVariant.Dots} gap={16} size={1.2} color="#c9d1db" />
            <MiniMap
              pannable
              zoomable
              nodeStrokeWidth={2}
              nodeColor={miniMapColour}
              ariaLabel="Minimap"
            />
            <Controls showInteractive={false} />
          </ReactFlow>
        </FarContext.Provider>
      ) : null}
      {nodes.length === 0 && !readOnly ? (
        <div className="canvas-empty">
          <div>Drag nodes from the palette, or press <kbd>Tab</kbd> to add one here.</div>
        </div>
      ) : null}
      {quickAdd ? (
        <QuickAdd
          at={quickAdd.screen}
          hint={quickAdd.connectFrom ? `connects from ${quickAdd.connectFrom.node} (${quickAdd.connectFrom.kind})` : undefined}
          filter={
            quickAdd.connectFrom
              ? (e) => e.inputs.some((i) => i.accepts.includes(quickAdd.connectFrom!.kind))
              : undefined
          }
          onClose={() => setQuickAdd(null)}
          onPick={(entry) => {
            addEntry(entry, quickAdd.flow, quickAdd.connectFrom, true);
            setQuickAdd(null);
          }}
        />
      ) : null}
    </div>
  );
}
