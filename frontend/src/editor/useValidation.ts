/** Validate the unsaved document on the Hub after each change (debounced); markers follow. */
import { useEffect } from "react";
import { api, unwrap } from "../api/client";
import type { EditorStore } from "./store";

const DEBOUNCE_MS = 450;

export function useValidation(store: EditorStore, flowId: string, enabled: boolean): void {
  useEffect(() => {
    if (!enabled) return;
    let timer: number | undefined;
    let controller: AbortController | null = null;
    let last = -1;
    const run = () => {
      const s = store.getState();
      const revision = s.revision;
      if (revision === last) return;
      last = revision;
      controller?.abort();
      controller = new AbortController();
      const signal = controller.signal;
      const document = s.toDocument() as unknown as Record<string, unknown>;
      unwrap(
        api.POST("/api/flows/{flow_id}/validate", {
          params: { path: { flow_id: flowId } },
          body: { document },
          signal,
        }),
      ).then(
        (report) => {
          if (!signal.aborted && store.getState().revision === revision) {
            store.getState().setDiagnostics(report.diagnostics, revision);
          }
        },
        () => {
          /* offline or aborted: keep the last markers; the next change retries */
          if (!signal.aborted) last = -1;
        },
      );
    };
    const unsubscribe = store.subscribe((s, prev) => {
      if (s.revision === prev.revision) return;
      window.clearTimeout(timer);
      timer = window.setTimeout(run, DEBOUNCE_MS);
    });
    // The first check waits until the browser is idle: meanwhile a large flow is being drawn, and
    // serialising it (and the Hub checking it, on the same machine in a small setup) would slow that.
    const idle = window.requestIdleCallback?.(run, { timeout: 1000 });
    if (idle === undefined) timer = window.setTimeout(run, 0);
    return () => {
      unsubscribe();
      if (idle !== undefined) window.cancelIdleCallback(idle);
      window.clearTimeout(timer);
      controller?.abort();
    };
  }, [store, flowId, enabled]);
}
