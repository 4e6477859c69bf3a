// The admin token: kept in localStorage, so every tab of this browser is signed in until
// "Sign out" (which clears it in every tab). The trade-off is in the README: any script running
// on this origin, and anyone with this browser profile, can read the token.

const KEY = "mobiletrain.token";

type Listener = (token: string | null, reason: string) => void;
const listeners = new Set<Listener>();

export function getToken(): string | null {
  try {
    return localStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function setToken(token: string): void {
  localStorage.setItem(KEY, token);
  for (const fn of listeners) fn(token, "");
}

/** Forget the token (in every tab); `reason` is shown on the sign-in screen. */
export function signOut(reason = ""): void {
  try {
    localStorage.removeItem(KEY);
    // A token from an older build (kept per tab) must not sign the tab back in.
    sessionStorage.removeItem(KEY);
  } catch {
    // storage disabled: nothing was kept
  }
  for (const fn of listeners) fn(null, reason);
}

// Another tab signed in or out: follow it (not under Node, where the unit tests import this).
if (typeof window !== "undefined") {
  window.addEventListener("storage", (e) => {
    if (e.key !== KEY && e.key !== null) return;
    const token = getToken();
    for (const fn of listeners) fn(token, token ? "" : "Signed out in another tab.");
  });
}

export function onAuthChange(fn: Listener): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function authHeaders(): Record<string, string> {
  const token = getToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}
