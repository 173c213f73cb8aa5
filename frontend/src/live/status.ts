/**
 * Live node status (rates, errors, connection state) for the badges on canvas nodes.
 * Fed by the deploy status of the open flow (see live/useFlowStatus.ts); one entry per node id.
 */
import { create } from "zustand";

export interface NodeStatus {
  state: "ok" | "warn" | "error" | "idle";
  text: string;
  title: string;
}

interface LiveStatusState {
  byNode: Record<string, NodeStatus>;
  set: (byNode: Record<string, NodeStatus>) => void;
  clear: () => void;
}

export const useLiveStatusStore = create<LiveStatusState>((set) => ({
  byNode: {},
  set: (byNode) => set({ byNode }),
  clear: () => set({ byNode: {} }),
}));

export function useLiveStatus(nodeId: string): NodeStatus | undefined {
  return useLiveStatusStore((s) => s.byNode[nodeId]);
}
