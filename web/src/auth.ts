// The admin token: kept in sessionStorage (gone when the tab closes), sent on every API call.

const KEY = "mobiletrain.token";

type Listener = (token: string | null, reason: string) => void;
const listeners = new Set<Listener>();

export function getToken(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function setToken(token: string): void {
  sessionStorage.setItem(KEY, token);
  for (const fn of listeners) fn(token, "");
}

/** Forget the token; `reason` is shown on the sign-in screen. */
export function signOut(reason = ""): void {
  sessionStorage.removeItem(KEY);
  for (const fn of listeners) fn(null, reason);
}

export function onAuthChange(fn: Listener): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function authHeaders(): Record<string, string> {
  const token = getToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}
