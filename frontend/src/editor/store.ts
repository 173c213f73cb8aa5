/**
 * One store per open flow (a factory, as in strudel-flow): the canvas graph, selection, undo/redo
 * history, the dirty flag, diagnostics and compare marks. Components read it through selector
 * hooks, so a change to one node re-renders that node only.
 */
import {
  type Connection,
  type EdgeChange,
  type NodeChange,
  type XYPosition,
  applyEdgeChanges,
  applyNodeChanges,
} from "@xyflow/react";
import { createContext, useContext } from "react";
import { createStore, useStore, type StoreApi } from "zustand";
import type { Diagnostic, FlowDocument } from "../api/types";
import type { CatalogEntry } from "../catalog/types";
import { type ClipboardPayload, pastePayload } from "../flow/clipboard";
import { type DiagnosticIndex, EMPTY_INDEX, indexDiagnostics } from "../flow/diagnostics";
import type { Mark } from "../flow/diff";
import {
  COMMENT_PREFIX,
  type CanvasNode,
  type CommentNode,
  type DocumentHeader,
  type FrameNode,
  type ProxusNode,
  type ProxusNodeData,
  type Wire,
  documentToGraph,
  graphToDocument,
  isComment,
  isFrame,
  isProxusNode,
  layoutFrames,
  newNodeId,
  shortId,
  toFrameNode,
} from "../flow/graph";
import { defaultConfig } from "../schema/jsonschema";

interface Snapshot {
  nodes: CanvasNode[];
  edges: Wire[];
  header: DocumentHeader;
}

const HISTORY_LIMIT = 200;
const COALESCE_MS = 1200;

export interface CompareState {
  version: number;
  marks: Record<string, Mark>;
  wireMarks: Record<string, Mark>;
  ghosts: ProxusNode[];
}

export interface EditorState {
  header: DocumentHeader;
  /** The saved version this edit is based on (sent as base_version). */
  baseVersion: number;
  nodes: CanvasNode[];
  edges: Wire[];
  selectedNodes: string[];
  selectedEdges: string[];
  dirty: boolean;
  /** Increments with every change that can change the compiler's verdict (not moves): drives validation. */
  revision: number;
  past: Snapshot[];
  future: Snapshot[];
  coalesce: { key: string; at: number } | null;
  diagnostics: DiagnosticIndex;
  diagnosticsRevision: number;
  compare: CompareState | null;
  readOnly: boolean;
  /** The node whose config panel is open. */
  focused: string | null;
  /** Nodes whose output the debug panel shows (live taps), besides the debug sinks. */
  watched: string[];

  /**
   * Replace the graph with a saved document. `sizeOf` (optional) tells the size a node of a type
   * will have on the canvas: React Flow then shows the nodes (and fits the view) on the first
   * render instead of after measuring every one of them; a wrong guess is corrected by measuring.
   */
  load: (
    doc: FlowDocument,
    version: number,
    outputKind: (t: string, p: string) => string | undefined,
    sizeOf?: (type: string, version: number) => { width: number; height: number } | undefined,
  ) => void;
  onNodesChange: (changes: NodeChange<CanvasNode>[]) => void;
  onEdgesChange: (changes: EdgeChange<Wire>[]) => void;
  beginDrag: () => void;
  connect: (conn: Connection, kind: string) => void;
  addNode: (
    spec: CatalogEntry,
    position: XYPosition,
    connectFrom?: { node: string; port: string; input: string; kind: string },
  ) => string;
  updateNode: (id: string, patch: Partial<Pick<ProxusNodeData, "label" | "config" | "edge">>, coalesceKey?: string) => void;
  deleteSelection: () => void;
  deleteElements: (nodeIds: string[], edgeIds: string[]) => void;
  selectAll: () => void;
  selectOnly: (nodeIds: string[]) => void;
  paste: (payload: ClipboardPayload, anchor: XYPosition) => number;
  applyPositions: (positions: Map<string, XYPosition>) => void;
  addComment: (position: XYPosition) => string;
  updateComment: (commentId: string, text: string) => void;
  groupSelection: (label: string) => string | null;
  updateGroup: (groupId: string, patch: { label?: string; color?: string }) => void;
  ungroup: (groupId: string) => void;
  undo: () => void;
  redo: () => void;
  markSaved: (version: number) => void;
  setDiagnostics: (diagnostics: Diagnostic[], revision: number) => void;
  setCompare: (compare: CompareState | null) => void;
  setReadOnly: (readOnly: boolean) => void;
  setFocused: (id: string | null) => void;
  toggleWatch: (id: string) => void;
  setName: (name: string) => void;
  setMetadata: (patch: Partial<NonNullable<DocumentHeader["metadata"]>>) => void;
  toDocument: () => FlowDocument;
}

export type EditorStore = StoreApi<EditorState>;

function selectionOf(nodes: CanvasNode[], edges: Wire[]): { selectedNodes: string[]; selectedEdges: string[] } {
  const selectedNodes: string[] = [];
  for (const n of nodes) if (n.selected) selectedNodes.push(n.id);
  const selectedEdges: string[] = [];
  for (const e of edges) if (e.selected) selectedEdges.push(e.id);
  return { selectedNodes, selectedEdges };
}

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export function createEditorStore(header: DocumentHeader, readOnly = false): EditorStore {
  return createStore<EditorState>((set, get) => {
    /** Record the current graph before a change (coalescing rapid edits of one field). */
    const remember = (coalesceKey?: string) => {
      const s = get();
      const now = Date.now();
      if (coalesceKey && s.coalesce && s.coalesce.key === coalesceKey && now - s.coalesce.at < COALESCE_MS) {
        set({ coalesce: { key: coalesceKey, at: now } });
        return;
      }
      set({
        past: [...s.past.slice(-(HISTORY_LIMIT - 1)), { nodes: s.nodes, edges: s.edges, header: s.header }],
        future: [],
        coalesce: coalesceKey ? { key: coalesceKey, at: now } : null,
      });
    };
    const changed = (nodes: CanvasNode[], edges: Wire[], extra: Partial<EditorState> = {}) => {
      const s = get();
      set({ nodes, edges, dirty: true, revision: s.revision + 1, ...extra });
    };
    const takenIn = (nodes: CanvasNode[]) => {
      const ids = new Set(nodes.map((n) => n.id));
      return (id: string) => ids.has(id);
    };

    return {
      header,
      baseVersion: header.version,
      nodes: [],
      edges: [],
      selectedNodes: [],
      selectedEdges: [],
      dirty: false,
      revision: 0,
      past: [],
      future: [],
      coalesce: null,
      diagnostics: EMPTY_INDEX,
      diagnosticsRevision: -1,
      compare: null,
      readOnly,
      focused: null,
      watched: [],

      load: (doc, version, outputKind, sizeOf) => {
        const graph = documentToGraph(doc, outputKind);
        let nodes = graph.nodes;
        if (sizeOf) {
          for (const n of nodes) {
            if (!isProxusNode(n) || n.measured) continue;
            const size = sizeOf(n.data.type, n.data.typeVersion);
            if (size) n.measured = size;
          }
          nodes = layoutFrames(nodes); // frames around their members' expected sizes
        }
        set({
          header: { id: doc.id, name: doc.name, version, metadata: doc.metadata },
          baseVersion: version,
          nodes,
          edges: graph.edges,
          selectedNodes: [],
          selectedEdges: [],
          dirty: false,
          revision: get().revision + 1,
          past: [],
          future: [],
          coalesce: null,
          compare: null,
          focused: null,
        });
      },

      onNodesChange: (changes) => {
        const s = get();
        let moved = false;
        let selection = false;
        let frameMoves: { id: string; dx: number; dy: number }[] | null = null;
        for (const c of changes) {
          if (c.type === "position" && c.position) {
            moved = moved || !!c.dragging || c.dragging === false;
            if (c.id.startsWith("g:")) {
              const frame = s.nodes.find((n) => n.id === c.id);
              if (frame) {
                (frameMoves ??= []).push({ id: c.id, dx: c.position.x - frame.position.x, dy: c.position.y - frame.position.y });
              }
            }
          } else if (c.type === "select") {
            selection = true;
          } else if (c.type === "remove") {
            return; // deletion goes through deleteSelection (history, groups)
          }
        }
        if (s.readOnly && moved) return;
        let nodes = applyNodeChanges<CanvasNode>(changes, s.nodes);
        if (frameMoves) {
          // Dragging a frame drags its members (unless they are being dragged themselves).
          const dragged = new Set(changes.filter((c) => c.type === "position").map((c) => c.id));
          const shift = new Map<string, { dx: number; dy: number }>();
          for (const m of frameMoves) {
            const frame = nodes.find((n) => n.id === m.id) as FrameNode | undefined;
            for (const member of frame?.data.members ?? []) if (!dragged.has(member)) shift.set(member, m);
          }
          nodes = nodes.map((n) => {
            const d = shift.get(n.id);
            return d ? { ...n, position: { x: n.position.x + d.dx, y: n.position.y + d.dy } } : n;
          });
        }
        nodes = layoutFrames(nodes);
        const patch: Partial<EditorState> = { nodes };
        if (selection) {
          const sel = selectionOf(nodes, s.edges);
          if (!sameList(sel.selectedNodes, s.selectedNodes)) patch.selectedNodes = sel.selectedNodes;
        }
        // Moving nodes changes the document but not what the compiler says: no new revision.
        if (moved) patch.dirty = true;
        set(patch);
      },

      onEdgesChange: (changes) => {
        const s = get();
        const relevant = changes.filter((c) => c.type === "select");
        if (!relevant.length) return;
        const edges = applyEdgeChanges<Wire>(relevant, s.edges);
        set({ edges, selectedEdges: selectionOf([], edges).selectedEdges });
      },

      beginDrag: () => {
        if (!get().readOnly) remember();
      },

      connect: (conn, kind) => {
        const s = get();
        if (s.readOnly || !conn.source || !conn.target) return;
        remember();
        const wire: Wire = {
          id: shortId("w_"),
          source: conn.source,
          target: conn.target,
          sourceHandle: conn.sourceHandle ?? "out",
          targetHandle: conn.targetHandle ?? "in",
          data: { kind },
          className: `wire-${kind}`,
        };
        changed(s.nodes, [...s.edges, wire]);
      },

      addNode: (spec, position, connectFrom) => {
        const s = get();
        remember();
        const id = newNodeId(spec.type, takenIn(s.nodes));
        const node: ProxusNode = {
          id,
          type: "proxus",
          position,
          selected: true,
          data: {
            type: spec.type,
            typeVersion: spec.version,
            label: "",
            config: defaultConfig(spec.config_schema),
            edge: null,
          },
        };
        const nodes = [...s.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)), node];
        let edges = s.edges.map((e) => (e.selected ? { ...e, selected: false } : e));
        if (connectFrom) {
          const from = s.nodes.find((n) => n.id === connectFrom.node);
          if (from) {
            const kind = connectFrom.kind;
            edges = [
              ...edges,
              {
                id: shortId("w_"),
                source: connectFrom.node,
                target: id,
                sourceHandle: connectFrom.port,
                targetHandle: connectFrom.input,
                data: { kind },
                className: `wire-${kind}`,
              },
            ];
          }
        }
        changed(nodes, edges, { selectedNodes: [id], selectedEdges: [], focused: id });
        return id;
      },

      updateNode: (id, patch, coalesceKey) => {
        const s = get();
        if (s.readOnly) return;
        remember(coalesceKey ? `${id}:${coalesceKey}` : undefined);
        const nodes = s.nodes.map((n) =>
          n.id === id && isProxusNode(n) ? { ...n, data: { ...n.data, ...patch } } : n,
        ) as CanvasNode[];
        changed(nodes, s.edges);
      },

      deleteSelection: () => {
        const s = get();
        get().deleteElements(s.selectedNodes, s.selectedEdges);
      },

      deleteElements: (nodeIds, edgeIds) => {
        const s = get();
        if (s.readOnly || (!nodeIds.length && !edgeIds.length)) return;
        remember();
        const gone = new Set(nodeIds);
        const goneEdges = new Set(edgeIds);
        let nodes = s.nodes
          .filter((n) => !gone.has(n.id))
          .map((n) => {
            if (!isFrame(n)) return n;
            const members = n.data.members.filter((m) => !gone.has(m));
            return members.length === n.data.members.length ? n : { ...n, data: { ...n.data, members } };
          }) as CanvasNode[];
        // A frame left without members disappears with them.
        nodes = nodes.filter((n) => !isFrame(n) || n.data.members.length > 0);
        const edges = s.edges.filter((e) => !goneEdges.has(e.id) && !gone.has(e.source) && !gone.has(e.target));
        changed(layoutFrames(nodes), edges, {
          selectedNodes: [],
          selectedEdges: [],
          focused: s.focused && gone.has(s.focused) ? null : s.focused,
        });
      },

      selectAll: () => {
        const s = get();
        const nodes = s.nodes.map((n) => (n.selected ? n : { ...n, selected: true }));
        const edges = s.edges.map((e) => (e.selected ? e : { ...e, selected: true }));
        set({ nodes, edges, ...selectionOf(nodes, edges) });
      },

      selectOnly: (nodeIds) => {
        const s = get();
        const want = new Set(nodeIds);
        const nodes = s.nodes.map((n) => (!!n.selected === want.has(n.id) ? n : { ...n, selected: want.has(n.id) }));
        const edges = s.edges.map((e) => (e.selected ? { ...e, selected: false } : e));
        set({ nodes, edges, ...selectionOf(nodes, edges), focused: nodeIds.length === 1 ? nodeIds[0]! : s.focused });
      },

      paste: (payload, anchor) => {
        const s = get();
        if (s.readOnly) return 0;
        const pasted = pastePayload(payload, takenIn(s.nodes), anchor);
        if (!pasted.nodes.length) return 0;
        remember();
        const nodes = [
          ...s.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)),
          ...pasted.nodes,
        ] as CanvasNode[];
        const edges = [...s.edges.map((e) => (e.selected ? { ...e, selected: false } : e)), ...pasted.edges];
        changed(nodes, edges, selectionOf(nodes, edges));
        return pasted.nodes.filter(isProxusNode).length;
      },

      applyPositions: (positions) => {
        const s = get();
        if (s.readOnly || positions.size === 0) return;
        remember();
        const nodes = s.nodes.map((n) => {
          const p = positions.get(n.id);
          return p ? { ...n, position: p } : n;
        });
        set({ nodes: layoutFrames(nodes), dirty: true });
      },

      addComment: (position) => {
        const s = get();
        remember();
        const commentId = shortId("note_");
        const node: CommentNode = {
          id: COMMENT_PREFIX + commentId,
          type: "comment",
          position,
          data: { commentId, text: "" },
          selected: true,
        };
        const nodes = [...s.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)), node] as CanvasNode[];
        changed(nodes, s.edges, { selectedNodes: [node.id] });
        return node.id;
      },

      updateComment: (commentId, text) => {
        const s = get();
        if (s.readOnly) return;
        remember(`comment:${commentId}`);
        const nodes = s.nodes.map((n) =>
          isComment(n) && n.data.commentId === commentId ? { ...n, data: { ...n.data, text } } : n,
        ) as CanvasNode[];
        changed(nodes, s.edges);
      },

      groupSelection: (label) => {
        const s = get();
        const members = s.nodes.filter((n) => n.selected && isProxusNode(n)).map((n) => n.id);
        if (s.readOnly || members.length === 0) return null;
        remember();
        const groupId = shortId("group_");
        const frame = toFrameNode({ id: groupId, label, nodes: members });
        // A node belongs to one frame: leaving the old frames keeps the picture unambiguous.
        const taken = new Set(members);
        const others = s.nodes
          .map((n) =>
            isFrame(n) && n.data.members.some((m) => taken.has(m))
              ? { ...n, data: { ...n.data, members: n.data.members.filter((m) => !taken.has(m)) } }
              : n,
          )
          .filter((n) => !isFrame(n) || n.data.members.length > 0) as CanvasNode[];
        changed(layoutFrames([frame, ...others]), s.edges);
        return frame.id;
      },

      updateGroup: (groupId, patch) => {
        const s = get();
        if (s.readOnly) return;
        remember(`group:${groupId}`);
        const nodes = s.nodes.map((n) =>
          isFrame(n) && n.data.groupId === groupId ? { ...n, data: { ...n.data, ...patch } } : n,
        ) as CanvasNode[];
        changed(nodes, s.edges);
      },

      ungroup: (groupId) => {
        const s = get();
        if (s.readOnly) return;
        remember();
        changed(
          s.nodes.filter((n) => !(isFrame(n) && n.data.groupId === groupId)),
          s.edges,
          { selectedNodes: s.selectedNodes.filter((id) => id !== `g:${groupId}`) },
        );
      },

      undo: () => {
        const s = get();
        const prev = s.past[s.past.length - 1];
        if (!prev || s.readOnly) return;
        set({
          past: s.past.slice(0, -1),
          future: [...s.future, { nodes: s.nodes, edges: s.edges, header: s.header }],
          nodes: prev.nodes,
          edges: prev.edges,
          header: prev.header,
          ...selectionOf(prev.nodes, prev.edges),
          dirty: true,
          revision: s.revision + 1,
          coalesce: null,
        });
      },

      redo: () => {
        const s = get();
        const next = s.future[s.future.length - 1];
        if (!next || s.readOnly) return;
        set({
          future: s.future.slice(0, -1),
          past: [...s.past, { nodes: s.nodes, edges: s.edges, header: s.header }],
          nodes: next.nodes,
          edges: next.edges,
          header: next.header,
          ...selectionOf(next.nodes, next.edges),
          dirty: true,
          revision: s.revision + 1,
          coalesce: null,
        });
      },

      markSaved: (version) => {
        set((s) => ({ baseVersion: version, header: { ...s.header, version }, dirty: false }));
      },

      setDiagnostics: (diagnostics, revision) => {
        set({ diagnostics: indexDiagnostics(diagnostics), diagnosticsRevision: revision });
      },

      setCompare: (compare) => set({ compare }),
      setReadOnly: (readOnly) => set({ readOnly }),
      setFocused: (focused) => set({ focused }),
      toggleWatch: (id) => {
        const w = get().watched;
        set({ watched: w.includes(id) ? w.filter((x) => x !== id) : [...w, id] });
      },
      setName: (name) => {
        const s = get();
        remember();
        set({ header: { ...s.header, name }, dirty: true, revision: s.revision + 1 });
      },

      setMetadata: (patch) => {
        const s = get();
        if (s.readOnly) return;
        remember("metadata");
        const metadata = { ...(s.header.metadata ?? {}), ...patch };
        for (const [k, v] of Object.entries(metadata)) if (v === null || v === "") delete (metadata as Record<string, unknown>)[k];
        set({ header: { ...s.header, metadata }, dirty: true, revision: s.revision + 1 });
      },

      toDocument: () => {
        const s = get();
        return graphToDocument({ ...s.header, version: s.baseVersion }, { nodes: s.nodes, edges: s.edges });
      },
    };
  });
}

export const EditorContext = createContext<EditorStore | null>(null);

export function useEditorStore(): EditorStore {
  const store = useContext(EditorContext);
  if (!store) throw new Error("useEditor outside an EditorContext");
  return store;
}

/** Select from the open flow's store; re-renders only when the selected value changes. */
export function useEditor<T>(selector: (s: EditorState) => T): T {
  return useStore(useEditorStore(), selector);
}
