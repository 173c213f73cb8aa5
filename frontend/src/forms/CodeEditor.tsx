/**
 * CodeMirror 6 for `x-widget: code` fields: Python (UDFs) and the expression language, with the
 * Hub's diagnostics (line/column on this field's path) marked on their lines. Loaded lazily.
 */
import { autocompletion, type CompletionContext, type CompletionResult, closeBrackets } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { python } from "@codemirror/lang-python";
import { bracketMatching, defaultHighlightStyle, indentOnInput, syntaxHighlighting } from "@codemirror/language";
import { type Diagnostic as CmDiagnostic, lintGutter, setDiagnostics } from "@codemirror/lint";
import { Compartment, EditorState, type Extension } from "@codemirror/state";
import {
  EditorView,
  drawSelection,
  highlightActiveLine,
  highlightActiveLineGutter,
  keymap,
  lineNumbers,
  placeholder as cmPlaceholder,
} from "@codemirror/view";
import { useEffect, useRef } from "react";
import type { Diagnostic } from "../api/types";
import { configPath } from "../flow/diagnostics";

interface Props {
  value: string;
  language: string;
  readOnly: boolean;
  onChange: (value: string) => void;
  diagnostics: Diagnostic[];
  fieldPath: string;
  help?: { functions: Record<string, string>; constants: Record<string, string>; fields: Record<string, string> };
  label?: string;
}

function expressionCompletions(helpRef: { current: Props["help"] }) {
  return (ctx: CompletionContext): CompletionResult | null => {
    const help = helpRef.current;
    if (!help) return null;
    const word = ctx.matchBefore(/[A-Za-z_][A-Za-z0-9_]*/);
    if (!word || (word.from === word.to && !ctx.explicit)) return null;
    return { from: word.from, options: completionOptions(help), validFor: /^[A-Za-z0-9_]*$/ };
  };
}

const optionCache = new WeakMap<object, ReturnType<typeof buildOptions>>();
function completionOptions(help: NonNullable<Props["help"]>) {
  let options = optionCache.get(help);
  if (!options) {
    options = buildOptions(help);
    optionCache.set(help, options);
  }
  return options;
}

function buildOptions(help: NonNullable<Props["help"]>) {
  return [
    ...Object.entries(help.functions).map(([label, info]) => ({ label, type: "function", info, apply: `${label}(` })),
    ...Object.entries(help.constants).map(([label, info]) => ({ label, type: "constant", info })),
    ...Object.entries(help.fields).map(([label, info]) => ({ label, type: "variable", info })),
    ...["and", "or", "not", "if", "else", "in"].map((label) => ({ label, type: "keyword" })),
  ];
}

const theme = EditorView.theme({
  "&": { fontSize: "12.5px", border: "1px solid var(--line)", borderRadius: "6px", background: "#fff" },
  "&.cm-focused": { outline: "2px solid var(--focus)", outlineOffset: "-1px" },
  ".cm-scroller": { fontFamily: "var(--mono)", lineHeight: "1.5" },
  ".cm-content": { minHeight: "3.2em" },
  ".cm-gutters": { background: "#f6f8fa", borderRight: "1px solid var(--line)", color: "#8a94a3" },
});

/** Offset of a 1-based line/column in the document, clamped. */
function offsetOf(state: EditorState, line?: number | null, column?: number | null): { from: number; to: number } {
  const l = Math.min(Math.max(line ?? 1, 1), state.doc.lines);
  const info = state.doc.line(l);
  const from = Math.min(info.from + Math.max((column ?? 1) - 1, 0), info.to);
  const to = column ? Math.min(from + 1, info.to) : info.to;
  return { from, to: to > from ? to : Math.min(info.to, from + 1) };
}

function toCm(state: EditorState, diagnostics: Diagnostic[], fieldPath: string): CmDiagnostic[] {
  return diagnostics
    .filter((d) => configPath(d.path) === fieldPath)
    .map((d) => {
      const { from, to } = offsetOf(state, d.line, d.column);
      return {
        from,
        to: Math.max(to, from),
        severity: d.severity === "error" ? "error" : "warning",
        message: d.hint ? `${d.message}\n${d.hint}` : d.message,
        source: "Hub",
      };
    });
}

export default function CodeEditor({ value, language, readOnly, onChange, diagnostics, fieldPath, help, label }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const onChangeRef = useRef(onChange);
  onChangeRef.current = onChange;
  const readOnlyCompartment = useRef(new Compartment());
  const helpRef = useRef(help);
  helpRef.current = help;

  useEffect(() => {
    if (!host.current) return;
    const extensions: Extension[] = [
      lineNumbers(),
      highlightActiveLineGutter(),
      history(),
      drawSelection(),
      indentOnInput(),
      bracketMatching(),
      closeBrackets(),
      highlightActiveLine(),
      syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
      keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
      lintGutter(),
      theme,
      EditorView.lineWrapping,
      readOnlyCompartment.current.of([EditorState.readOnly.of(readOnly), EditorView.editable.of(!readOnly)]),
      EditorView.contentAttributes.of({ "aria-label": label ?? "code", "data-language": language }),
      EditorView.updateListener.of((u) => {
        if (u.docChanged) onChangeRef.current(u.state.doc.toString());
      }),
      // Keep editor keys (Ctrl+Z, Delete, Tab) away from the canvas shortcuts.
      EditorView.domEventHandlers({ keydown: (e) => e.stopPropagation() }),
    ];
    if (language === "python") extensions.push(python());
    if (language === "expression") {
      extensions.push(cmPlaceholder("e.g. value * 0.1 + 4"));
      extensions.push(autocompletion({ override: [expressionCompletions(helpRef)] }));
    }
    const v = new EditorView({ parent: host.current, state: EditorState.create({ doc: value, extensions }) });
    view.current = v;
    return () => {
      v.destroy();
      view.current = null;
    };
    // The editor is created once per language; value, read-only and diagnostics sync below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [language]);

  useEffect(() => {
    const v = view.current;
    if (!v) return;
    const current = v.state.doc.toString();
    if (current !== value) v.dispatch({ changes: { from: 0, to: current.length, insert: value } });
  }, [value]);

  useEffect(() => {
    const v = view.current;
    if (!v) return;
    v.dispatch({
      effects: readOnlyCompartment.current.reconfigure([EditorState.readOnly.of(readOnly), EditorView.editable.of(!readOnly)]),
    });
  }, [readOnly]);

  useEffect(() => {
    const v = view.current;
    if (!v) return;
    v.dispatch(setDiagnostics(v.state, toCm(v.state, diagnostics, fieldPath)));
  }, [diagnostics, fieldPath, value]);

  return <div className={`code-editor lang-${language}`} ref={host} data-testid={`code-${fieldPath}`} />;
}
