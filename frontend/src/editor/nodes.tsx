/**
 * Canvas node components. ONE generic component draws every catalog node from its metadata
 * (icon, title, ports coloured by kind, validation marker, status badge); frames and sticky
 * notes are the two other kinds. All are memoised and read the store through narrow selectors.
 */
import { Handle, type NodeProps, Position } from "@xyflow/react";
import { AlertTriangle, CircleAlert, CircleHelp } from "lucide-react";
import { createContext, memo, useContext, useEffect, useRef, useState } from "react";
import type { Diagnostic } from "../api/types";
import { NodeIcon } from "../catalog/icons";
import { useSpec } from "../catalog/store";
import { worst } from "../flow/diagnostics";
import type { CatalogEntry } from "../catalog/types";
import { type CommentNode, type FrameNode, NODE_WIDTH, type ProxusNode } from "../flow/graph";
import { useLiveStatus } from "../live/status";
import { useEditor } from "./store";

const EMPTY: Diagnostic[] = [];

function IssueMarker({ diagnostics }: { diagnostics: Diagnostic[] }) {
  const level = worst(diagnostics);
  if (!level) return null;
  const Icon = level === "error" ? CircleAlert : AlertTriangle;
  return (
    <div className={`node-issues node-issues-${level}`} data-testid="node-issue" tabIndex={-1}>
      <Icon size={15} strokeWidth={2.2} aria-label={level === "error" ? "error" : "warning"} />
      <div className="node-issues-pop" role="tooltip">
        {diagnostics.slice(0, 6).map((d, i) => (
          <div key={i} className={`issue issue-${d.severity}`}>
            <div className="issue-message">{d.message}</div>
            {d.hint ? <div className="issue-hint">{d.hint}</div> : null}
          </div>
        ))}
        {diagnostics.length > 6 ? <div className="issue-more">… and {diagnostics.length - 6} more</div> : null}
      </div>
    </div>
  );
}

function StatusBadge({ id }: { id: string }) {
  const status = useLiveStatus(id);
  if (!status) return null;
  return (
    <div className={`node-status node-status-${status.state}`} title={status.title}>
      <span className="dot" />
      {status.text}
    </div>
  );
}

/** A node has more than one port on a side: drawn taller (`.pnode.tall`). */
function isTall(spec: CatalogEntry | undefined): boolean {
  return !!spec && Math.max(spec.inputs.length, spec.outputs.length) > 1;
}

/**
 * The size a catalog node is drawn at (styles.css: `.pnode` is 200 px wide, 56 px high or 72 px
 * when tall; its label and sub-title are cut to one line each). A hint for React Flow, which
 * measures again when the node turns out another size.
 */
export function expectedNodeSize(spec: CatalogEntry | undefined): { width: number; height: number } {
  return { width: NODE_WIDTH, height: isTall(spec) ? 72 : 56 };
}

function portTop(index: number, count: number): string {
  return `${((index + 1) / (count + 1)) * 100}%`;
}

/**
 * The node draws from its id, data and selection only: React Flow also passes its position, size,
 * z-index and drag state, which change on every measurement and drag step and must not re-render
 * the node's contents (handles, icon) — a 1,000-node flow would redraw them all after measuring.
 */
function sameNode(a: NodeProps<ProxusNode>, b: NodeProps<ProxusNode>): boolean {
  return a.id === b.id && a.data === b.data && a.selected === b.selected && a.type === b.type;
}

/**
 * Level of detail, provided by the canvas: zoomed far out a node is drawn as a coloured box (its
 * text, icon, port labels and status badge are hidden by `.zoomed-out` anyway), so they are not
 * created at all — a 1,000-node flow fitted to the screen builds a fraction of the DOM.
 */
export const FarContext = createContext(false);

export const ProxusNodeView = memo(function ProxusNodeView({ id, data, selected }: NodeProps<ProxusNode>) {
  const far = useContext(FarContext);
  const spec = useSpec(data.type, data.typeVersion);
  const diagnostics = useEditor((s) => s.diagnostics.byNode[id]) ?? EMPTY;
  const mark = useEditor((s) => s.compare?.marks[id]);
  const level = worst(diagnostics);
  const title = data.label || spec?.title || data.type;
  const category = spec?.category ?? "unknown";
  const inputs = spec?.inputs ?? [];
  const outputs = spec?.outputs ?? [];
  const tall = isTall(spec);
  return (
    <div
      className={[
        "pnode",
        `cat-${category}`,
        selected ? "selected" : "",
        level ? `has-${level}` : "",
        mark ? `mark-${mark}` : "",
        tall ? "tall" : "",
        spec ? "" : "unknown",
      ].join(" ")}
      data-testid="flow-node"
      data-node-id={id}
      data-node-type={data.type}
    >
      {far ? (
        <div className="pnode-icon" />
      ) : (
        <>
          <div className="pnode-icon">{spec ? <NodeIcon name={spec.icon} size={18} /> : <CircleHelp size={18} />}</div>
          <div className="pnode-text">
            <div className="pnode-title" title={title}>
              {title}
            </div>
            <div className="pnode-sub">{spec ? (data.label ? spec.title : data.type) : `unknown type ${data.type}`}</div>
          </div>
        </>
      )}
      <IssueMarker diagnostics={diagnostics} />
      {far ? null : <StatusBadge id={id} />}
      {mark ? <div className={`pnode-mark pnode-mark-${mark}`}>{mark}</div> : null}
      {inputs.map((p, i) => (
        <Handle
          key={`in-${p.name}`}
          id={p.name}
          type="target"
          position={Position.Left}
          style={{ top: portTop(i, inputs.length) }}
          className={`port port-in ${p.accepts.map((k) => `kind-${k}`).join(" ")}`}
          title={`${p.name}: ${p.description} (accepts ${p.accepts.join(", ")})`}
        >
          {inputs.length > 1 && !far ? <span className="port-label port-label-in">{p.name}</span> : null}
        </Handle>
      ))}
      {outputs.map((p, i) => (
        <Handle
          key={`out-${p.name}`}
          id={p.name}
          type="source"
          position={Position.Right}
          style={{ top: portTop(i, outputs.length) }}
          className={`port port-out kind-${p.kind}`}
          title={`${p.name}: ${p.description} (${p.kind})`}
        >
          {outputs.length > 1 && !far ? <span className="port-label port-label-out">{p.name}</span> : null}
        </Handle>
      ))}
    </div>
  );
}, sameNode);

/** A removed node shown while comparing with an older version (not part of the document). */
export const GhostNodeView = memo(function GhostNodeView({ data }: NodeProps<ProxusNode>) {
  const spec = useSpec(data.type, data.typeVersion);
  return (
    <div className="pnode ghost mark-removed" data-testid="ghost-node">
      <div className="pnode-icon">{spec ? <NodeIcon name={spec.icon} size={18} /> : null}</div>
      <div className="pnode-text">
        <div className="pnode-title">{data.label || spec?.title || data.type}</div>
        <div className="pnode-sub">removed since this version</div>
      </div>
      <div className="pnode-mark pnode-mark-removed">removed</div>
    </div>
  );
});

function InlineText({
  value,
  onCommit,
  editable,
  className,
  placeholder,
  multiline,
}: {
  value: string;
  onCommit: (v: string) => void;
  editable: boolean;
  className?: string;
  placeholder?: string;
  multiline?: boolean;
}) {
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(value);
  const ref = useRef<HTMLTextAreaElement & HTMLInputElement>(null);
  useEffect(() => {
    if (editing) {
      ref.current?.focus();
      ref.current?.select();
    }
  }, [editing]);
  if (editing) {
    const commit = () => {
      setEditing(false);
      if (draft !== value) onCommit(draft);
    };
    const props = {
      ref,
      className: `${className ?? ""} nodrag nowheel editing`,
      value: draft,
      onChange: (e: React.ChangeEvent<HTMLTextAreaElement & HTMLInputElement>) => setDraft(e.target.value),
      onBlur: commit,
      onKeyDown: (e: React.KeyboardEvent) => {
        e.stopPropagation();
        if (e.key === "Escape") {
          setDraft(value);
          setEditing(false);
        } else if (e.key === "Enter" && (!multiline || e.ctrlKey || e.metaKey)) {
          e.preventDefault();
          commit();
        }
      },
    };
    return multiline ? <textarea {...props} rows={4} /> : <input {...props} />;
  }
  return (
    <div
      className={`${className ?? ""} ${value ? "" : "placeholder"}`}
      onDoubleClick={(e) => {
        if (!editable) return;
        e.stopPropagation();
        setDraft(value);
        setEditing(true);
      }}
      title={editable ? "Double-click to edit" : undefined}
    >
      {value || placeholder}
    </div>
  );
}

export const FrameNodeView = memo(function FrameNodeView({ data, selected }: NodeProps<FrameNode>) {
  const readOnly = useEditor((s) => s.readOnly);
  const updateGroup = useEditor((s) => s.updateGroup);
  const color = data.color || "var(--frame)";
  return (
    <div
      className={`frame ${selected ? "selected" : ""}`}
      style={{ ["--frame-color" as string]: color }}
      data-testid="frame"
    >
      <div className="frame-header">
        <InlineText
          className="frame-title"
          value={data.label}
          placeholder="Group"
          editable={!readOnly}
          onCommit={(label) => updateGroup(data.groupId, { label })}
        />
        <span className="frame-count">{data.members.length}</span>
      </div>
    </div>
  );
});

export const CommentNodeView = memo(function CommentNodeView({ data, selected }: NodeProps<CommentNode>) {
  const readOnly = useEditor((s) => s.readOnly);
  const updateComment = useEditor((s) => s.updateComment);
  return (
    <div className={`note ${selected ? "selected" : ""}`} data-testid="comment">
      <InlineText
        className="note-text"
        value={data.text}
        placeholder="Double-click to write a note"
        editable={!readOnly}
        multiline
        onCommit={(text) => updateComment(data.commentId, text)}
      />
    </div>
  );
});

export const NODE_TYPES = {
  proxus: ProxusNodeView,
  frame: FrameNodeView,
  comment: CommentNodeView,
  ghost: GhostNodeView,
};
