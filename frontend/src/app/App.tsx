/** The shell: session probe, sign-in or setup, then the routed pages under a top bar. */
import { Workflow } from "lucide-react";
import { useEffect } from "react";
import { EditorPage } from "../editor/EditorPage";
import { FlowsPage } from "../pages/FlowsPage";
import { SignInPage } from "../pages/SignInPage";
import { Toasts } from "../util/toast";
import { UserChip } from "./UserChip";
import { useRoute } from "./router";
import { useSession } from "./session";

function TopBar() {
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
      <UserChip />
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
