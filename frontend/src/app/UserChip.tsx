/** Who is signed in, their role, and sign-out. */
import { LogOut } from "lucide-react";
import { errorMessage } from "../api/client";
import { toast } from "../util/toast";
import { useSession } from "./session";

export function UserChip({ compact }: { compact?: boolean }) {
  const me = useSession((s) => s.me);
  const logout = useSession((s) => s.logout);
  if (!me) return null;
  return (
    <div className="user" data-testid="user-menu">
      {!compact ? <span className="user-name">{me.display_name || me.username}</span> : null}
      <span className={`role role-${me.role}`} data-testid="role" title={compact ? me.display_name || me.username : undefined}>
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
  );
}
