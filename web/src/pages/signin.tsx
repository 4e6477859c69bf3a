import { useState } from "preact/hooks";

import { ApiError, describe } from "../api";
import { setToken } from "../auth";

/** Sign in with an admin token; it is checked against the server before it is kept. */
export function SignIn({ reason }: { reason: string }) {
  const [value, setValue] = useState("");
  const [show, setShow] = useState(false);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const token = value.trim();
    if (!token) {
      setError("Enter the admin token.");
      return;
    }
    setBusy(true);
    setError("");
    try {
      const resp = await fetch("/v1/projects?page_size=1", {
        headers: { Authorization: `Bearer ${token}` },
      });
      if (resp.status === 401 || resp.status === 403) {
        const body = (await resp.json().catch(() => ({}))) as { message?: string };
        throw new ApiError(resp.status, 0, "unauthenticated", body.message ?? "That token was refused.");
      }
      if (!resp.ok) throw new Error(`The server answered ${resp.status} ${resp.statusText}.`);
      setToken(token);
    } catch (err) {
      setError(err instanceof ApiError ? `That token was refused: ${err.message}` : describe(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="signin" id="main">
      <form class="card" onSubmit={(e) => void submit(e)} aria-labelledby="signin-title">
        <h1 id="signin-title">
          <span class="logo" aria-hidden="true" /> mobiletrain
        </h1>
        <p class="muted">Sign in with an admin token to manage projects, data and models.</p>
        {reason ? (
          <p class="notice" role="status">
            {reason}
          </p>
        ) : null}
        <label for="token">Admin token</label>
        <div class="row nowrap">
          <input
            id="token"
            name="token"
            type={show ? "text" : "password"}
            autoComplete="current-password"
            spellcheck={false}
            value={value}
            onInput={(e) => setValue((e.target as HTMLInputElement).value)}
            aria-describedby="token-help"
            aria-invalid={error ? true : undefined}
            required
          />
          <button type="button" onClick={() => setShow(!show)} aria-pressed={show}>
            {show ? "Hide" : "Show"}
          </button>
        </div>
        <p id="token-help" class="hint">
          A new server writes its first admin token to the file <code>admin-token</code> in its data
          folder. This browser keeps the token (every tab stays signed in) until you sign out; on
          a shared computer, sign out when you are done.
        </p>
        {error ? (
          <p class="error" role="alert">
            {error}
          </p>
        ) : null}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Checking…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
