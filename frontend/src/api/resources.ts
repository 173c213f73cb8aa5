/**
 * Small cached lists the editor's pickers need (devices, credentials, edges). A list the
 * signed-in role may not read (credentials are admin-only) resolves to null: the picker then
 * falls back to a plain text field.
 */
import { useEffect, useState } from "react";
import { ApiError, api, unwrap } from "./client";
import type { CredentialInfo, Device, EdgeGateway } from "./types";

const cache = new Map<string, Promise<unknown>>();

function cached<T>(key: string, load: () => Promise<T>): Promise<T | null> {
  let p = cache.get(key) as Promise<T | null> | undefined;
  if (!p) {
    p = load().catch((err) => {
      cache.delete(key);
      if (err instanceof ApiError && [401, 403, 404, 405].includes(err.status)) return null;
      throw err;
    });
    cache.set(key, p);
  }
  return p;
}

export function invalidate(prefix = ""): void {
  for (const k of [...cache.keys()]) if (k.startsWith(prefix)) cache.delete(k);
}

function useCached<T>(key: string | null, load: () => Promise<T>): { data: T | null; loading: boolean; error: string | null } {
  const [state, setState] = useState<{ data: T | null; loading: boolean; error: string | null }>({
    data: null,
    loading: key != null,
    error: null,
  });
  useEffect(() => {
    if (key == null) {
      setState({ data: null, loading: false, error: null });
      return;
    }
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    cached(key, load).then(
      (data) => live && setState({ data, loading: false, error: null }),
      (err: unknown) => live && setState({ data: null, loading: false, error: err instanceof Error ? err.message : String(err) }),
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
  return state;
}

export function useDevices(protocol: string | null) {
  return useCached<Device[]>(protocol ? `devices:${protocol}` : null, () =>
    unwrap(api.GET("/api/devices", { params: { query: { protocol: protocol as "modbus" | "opcua" } } })),
  );
}

export function useAllDevices(enabled = true) {
  return useCached<Device[]>(enabled ? "devices:*" : null, () => unwrap(api.GET("/api/devices")));
}

export function useCredentials(enabled: boolean) {
  return useCached<CredentialInfo[]>(enabled ? "credentials" : null, () => unwrap(api.GET("/api/credentials")));
}

export function useEdges(enabled = true) {
  return useCached<EdgeGateway[]>(enabled ? "edges" : null, () => unwrap(api.GET("/api/edges")));
}
