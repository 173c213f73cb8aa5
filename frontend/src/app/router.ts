/**
 * Hash routes (#/flows/abc): the Hub serves the app as static files, so only "/" has to exist.
 */
import { useSyncExternalStore } from "react";

export type Route =
  | { name: "flows" }
  | { name: "editor"; flowId: string }
  | { name: "not-found"; path: string };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, "") || "/";
  if (path === "/" || path === "/flows") return { name: "flows" };
  const m = /^\/flows\/([A-Za-z0-9_-]{1,64})$/.exec(path);
  if (m) return { name: "editor", flowId: m[1]! };
  return { name: "not-found", path };
}

function subscribe(callback: () => void): () => void {
  window.addEventListener("hashchange", callback);
  return () => window.removeEventListener("hashchange", callback);
}

export function useRoute(): Route {
  const hash = useSyncExternalStore(subscribe, () => window.location.hash);
  return parseRoute(hash);
}

export function navigate(path: string): void {
  window.location.hash = path;
}

export function flowPath(flowId: string): string {
  return `#/flows/${encodeURIComponent(flowId)}`;
}
