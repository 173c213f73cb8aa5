/** Sign in, or (on a fresh Hub) create the first administrator. */
import { useState } from "react";
import { errorMessage } from "../api/client";
import { useSession } from "../app/session";

export function SignInPage({ setup }: { setup: boolean }) {
  const login = useSession((s) => s.login);
  const createAdmin = useSession((s) => s.setup);
  const [username, setUsername] = useState(setup ? "admin" : "");
  const [password, setPassword] = useState("");
  const [repeat, setRepeat] = useState("");
  const [displayName, setDisplayName] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    if (setup && password !== repeat) {
      setError("The two passwords differ.");
      return;
    }
    setBusy(true);
    try {
      if (setup) await createAdmin(username, password, displayName);
      else await login(username, password);
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="signin">
      <form className="signin-card" onSubmit={submit} data-testid={setup ? "setup-form" : "login-form"}>
        <div className="brand big">
          <img src="/favicon.svg" alt="" width={34} height={34} />
          <span>Proxus</span>
        </div>
        <h1>{setup ? "Set up this Hub" : "Sign in"}</h1>
        {setup ? <p className="muted">No user exists yet. Create the first administrator account.</p> : null}
        <label className="field-label" htmlFor="username">
          User name
        </label>
        <input id="username" className="input" autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} autoFocus required />
        {setup ? (
          <>
            <label className="field-label" htmlFor="display-name">
              Display name
            </label>
            <input id="display-name" className="input" value={displayName} onChange={(e) => setDisplayName(e.target.value)} />
          </>
        ) : null}
        <label className="field-label" htmlFor="password">
          Password
        </label>
        <input
          id="password"
          className="input"
          type="password"
          autoComplete={setup ? "new-password" : "current-password"}
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          required
        />
        {setup ? (
          <>
            <label className="field-label" htmlFor="password2">
              Repeat the password
            </label>
            <input id="password2" className="input" type="password" autoComplete="new-password" value={repeat} onChange={(e) => setRepeat(e.target.value)} required />
          </>
        ) : null}
        {error ? (
          <p className="field-error" role="alert">
            {error}
          </p>
        ) : null}
        <button type="submit" className="btn primary wide" disabled={busy}>
          {busy ? "…" : setup ? "Create administrator" : "Sign in"}
        </button>
      </form>
    </div>
  );
}
