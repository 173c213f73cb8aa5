/** The shell: session probe, sign-in or setup, then the routed pages under a top bar. */
import { LogOut, Workflow } from "lucide-react";
import { useEffect } from "react";
import { EditorPage } from "../editor/EditorPage";
import { FlowsPage } from "../pages/FlowsPage";
import { SignInPage } from "../pages/SignInPage";
import { Toasts, toast } from "../util/toast";
import { errorMessage } from "../api/client";
import { useRoute } from "./router";
import { useSession } from "./session";

function TopBar() {
  const me = useSession((s) => s.me);
  const logout = useSession((s) => s.logout);
  return (
    <header className="topbar">
      <a className="brand" href="#/flows">
        <img src="/favicon.svg" alt="" width={22} height={22} />
        <span>Proxus</span>
      </a>
      <nav className="nav">
        <a href="#/flows" className="active">
          <Workflow size={15} /> Flows
        </a>
      </nav>
      <div className="spacer" />
      {me ? (
        <div className="user" data-testid="user-menu">
          <span className="user-name">{me.display_name || me.username}</span>
          <span className={`role role-${me.role}`} data-testid="role">
            {me.role}
          </span>
          <button
            type="button"
            className="icon-btn"
            title="Sign out"
            aria-label="Sign out"
            data-testid="logout"
            onClick={() => logout().catch((e: unknown) => toast.error(errorMessage(e)))}
          >
            <LogOut size={16} />
          </button>
        </div>
      ) : null}
    </header>
  );
}

export function App() {
  const status = useSession((s) => s.status);
  const probe = useSession((s) => s.probe);
  const route = useRoute();
  useEffect(() => {
    void probe();
  }, [probe]);

  let body;
  if (status === "unknown") body = <div className="page-message muted">Loading…</div>;
  else if (status === "setup" || status === "signed-out") body = <SignInPage setup={status === "setup"} />;
  else if (route.name === "editor") body = <EditorPage key={route.flowId} flowId={route.flowId} />;
  else if (route.name === "flows") body = <FlowsPage />;
  else
    body = (
      <div className="page-message">
        Nothing at {route.path}. <a href="#/flows">Go to the flows</a>
      </div>
    );
  const signedIn = status === "signed-in";
  return (
    <div className={`app ${route.name === "editor" && signedIn ? "app-editor" : ""}`}>
      {signedIn && route.name !== "editor" ? <TopBar /> : null}
      <main className="app-main">{body}</main>
      <Toasts />
    </div>
  );
}
