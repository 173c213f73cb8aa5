/** The signed-in user: who, which role, and the CSRF token every change must carry. */
import { create } from "zustand";
import { ApiError, api, setCsrfToken, setUnauthenticatedHandler, unwrap } from "../api/client";
import type { Me, Role } from "../api/types";

type Status = "unknown" | "setup" | "signed-out" | "signed-in";

interface SessionState {
  me: Me | null;
  status: Status;
  probe: () => Promise<void>;
  login: (username: string, password: string) => Promise<void>;
  setup: (username: string, password: string, displayName: string) => Promise<void>;
  logout: () => Promise<void>;
}

/**
 * A hint (not a secret: the session cookie is httpOnly) that this browser signed in before, so a
 * fresh visit asks for the login form without first provoking a 401 from /api/auth/me.
 */
const HINT = "proxus.signed-in";
function remember(on: boolean): void {
  try {
    if (on) window.localStorage.setItem(HINT, "1");
    else window.localStorage.removeItem(HINT);
  } catch {
    /* storage disabled */
  }
}
function remembered(): boolean {
  try {
    return window.localStorage.getItem(HINT) === "1";
  } catch {
    return true;
  }
}

function signedIn(me: Me): Partial<SessionState> {
  setCsrfToken(me.csrf_token);
  remember(true);
  return { me, status: "signed-in" };
}

export const useSession = create<SessionState>((set) => ({
  me: null,
  status: "unknown",
  probe: async () => {
    if (remembered()) {
      const { data, response } = await api.GET("/api/auth/me");
      if (response.ok && data) {
        set(signedIn(data));
        return;
      }
      remember(false);
    }
    const setup = await unwrap(api.GET("/api/auth/setup")).catch(() => ({ needed: false }));
    set({ me: null, status: setup.needed ? "setup" : "signed-out" });
  },
  login: async (username, password) => {
    const me = await unwrap(api.POST("/api/auth/login", { body: { username, password } }));
    set(signedIn(me));
  },
  setup: async (username, password, displayName) => {
    const me = await unwrap(
      api.POST("/api/auth/setup", { body: { username, password, display_name: displayName } }),
    );
    set(signedIn(me));
  },
  logout: async () => {
    try {
      await unwrap(api.POST("/api/auth/logout"));
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) throw err;
    }
    setCsrfToken("");
    remember(false);
    set({ me: null, status: "signed-out" });
  },
}));

setUnauthenticatedHandler(() => {
  setCsrfToken("");
  remember(false);
  useSession.setState({ me: null, status: "signed-out" });
});

const RANK: Record<string, number> = { viewer: 0, editor: 1, admin: 2 };

/** Whether the role may do what `needed` may (admin ⊃ editor ⊃ viewer). */
export function can(role: Role | undefined, needed: Role): boolean {
  return role != null && (RANK[role] ?? -1) >= (RANK[needed] ?? 99);
}

export function useCan(needed: Role): boolean {
  return useSession((s) => can(s.me?.role, needed));
}
