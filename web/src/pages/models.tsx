import QRCode from "qrcode";
import { useEffect, useState } from "preact/hooks";

import { ApiError, api, describe, saveBlob, type ModelVersion, type Project, type Token } from "../api";
import { Card, ErrorBox, Spinner, formatBytes, formatTime, pct, useLoad } from "../components/common";
import { Link, projectUrl } from "../router";

function DownloadButton({ project, version, format }: { project: Project; version: number; format: string }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const go = async () => {
    setBusy(true);
    setError("");
    try {
      const { blob, name } = await api.downloadModel(project.id, version, format);
      saveBlob(blob, `${project.name}-v${version}-${name}`);
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" class="small" onClick={() => void go()} disabled={busy} aria-label={`Download version ${version} as ${format}`}>
        {busy ? "Downloading…" : "Download"}
      </button>
      {error ? (
        <span class="error" role="alert">
          {error}
        </span>
      ) : null}
    </>
  );
}

function VersionCard({
  project,
  model,
  onPromote,
  busy,
}: {
  project: Project;
  model: ModelVersion;
  onPromote: (v: number) => void;
  busy: boolean;
}) {
  const byFormat = [...model.artifacts].sort((a, b) =>
    a.format === "keras" ? -1 : b.format === "keras" ? 1 : 0,
  );
  return (
    <li class="version" data-testid={`version-${model.version}`}>
      <div class="version-head">
        <h3>
          Version {model.version} {model.current ? <span class="badge state-succeeded">current</span> : null}
        </h3>
        <span class="muted">{formatTime(model.created_at)}</span>
        <span class="version-actions">
          <Link href={projectUrl(project.name, `models/${model.version}`)}>Evaluation</Link>
          {!model.current ? (
            <button type="button" class="small" disabled={busy} onClick={() => onPromote(model.version)}>
              Make current
            </button>
          ) : null}
        </span>
      </div>
      <div class="scroll-x">
        <table class="data">
          <caption class="visually-hidden">Files of version {model.version}</caption>
          <thead>
            <tr>
              <th scope="col">Format</th>
              <th scope="col">Size</th>
              <th scope="col">Validation accuracy</th>
              <th scope="col">
                <span class="visually-hidden">Download</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {byFormat.map((a) => {
              const acc = a.format === "keras" ? model.metrics.accuracy : model.metrics.tflite_accuracy[a.format];
              const delta =
                a.format !== "keras" && acc !== undefined && acc !== null && model.metrics.accuracy !== null
                  ? acc - model.metrics.accuracy
                  : null;
              return (
                <tr key={a.format}>
                  <th scope="row">{a.format}</th>
                  <td>{formatBytes(a.size)}</td>
                  <td>
                    {pct(acc ?? null)}
                    {delta !== null ? (
                      <span class={`delta ${delta < -0.005 ? "worse" : ""}`} title="LiteRT minus Keras">
                        {" "}
                        ({delta >= 0 ? "+" : ""}
                        {(delta * 100).toFixed(1)} pts vs Keras)
                      </span>
                    ) : a.format === "keras" ? (
                      <span class="muted"> (reference)</span>
                    ) : null}
                  </td>
                  <td>
                    <DownloadButton project={project} version={model.version} format={a.format} />
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </li>
  );
}

function QrCode({ text, label }: { text: string; label: string }) {
  const [url, setUrl] = useState("");
  const [error, setError] = useState("");
  useEffect(() => {
    QRCode.toDataURL(text, { errorCorrectionLevel: "M", margin: 2, width: 240 }).then(setUrl, (err: unknown) =>
      setError(describe(err)),
    );
  }, [text]);
  if (error) return <ErrorBox message={error} />;
  return url ? <img class="qr" src={url} alt={label} width={240} height={240} data-testid="qr-code" /> : null;
}

function DeviceTokens({ project }: { project: Project }) {
  const [name, setName] = useState("phone");
  const [days, setDays] = useState(90);
  const [server, setServer] = useState(location.origin);
  const [created, setCreated] = useState<Token | null>(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const tokens = useLoad<Token[] | null>(
    () =>
      api.listTokens(project.id).catch((err: unknown) => {
        if (err instanceof ApiError && (err.status === 404 || err.status === 405)) return null;
        throw err;
      }),
    [project.id],
  );

  const create = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      setCreated(await api.createDeviceToken(project.id, name.trim(), days));
      tokens.reload();
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  };

  const revoke = async (id: string) => {
    setError("");
    try {
      await api.revokeToken(id);
      if (created?.id === id) setCreated(null);
      tokens.reload();
    } catch (err) {
      setError(describe(err));
    }
  };

  if (tokens.data === null) {
    return <p class="muted">This server does not manage device tokens yet.</p>;
  }
  const mine = (tokens.data ?? []).filter((t) => t.project_id === project.id && !t.revoked_at);
  const payload = created?.token
    ? JSON.stringify({ server, project: project.name, project_id: project.id, token: created.token })
    : "";

  return (
    <>
      <form class="form-grid" onSubmit={(e) => void create(e)} aria-label="New device token">
        <div class="field">
          <label for="dev-name">Device name</label>
          <input id="dev-name" value={name} maxLength={128} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </div>
        <div class="field">
          <label for="dev-days">Valid for (days)</label>
          <input
            id="dev-days"
            type="number"
            min={0}
            max={3650}
            value={days}
            aria-describedby="dev-days-hint"
            onInput={(e) => setDays(Number((e.target as HTMLInputElement).value))}
          />
          <span id="dev-days-hint" class="hint">
            0 = never expires.
          </span>
        </div>
        <div class="field wide">
          <label for="dev-server">Server address as the phone reaches it</label>
          <input id="dev-server" value={server} onInput={(e) => setServer((e.target as HTMLInputElement).value)} />
        </div>
        <div class="field wide">
          <button type="submit" class="primary" disabled={busy}>
            Create device token
          </button>
        </div>
      </form>
      <ErrorBox message={error} />
      {created?.token ? (
        <div class="token-box" aria-live="polite">
          <QrCode text={payload} label={`QR code with the server address ${server} and the new token`} />
          <div>
            <p>
              Scan this with the app, or enter by hand. The token is shown only now.
            </p>
            <dl class="facts">
              <dt>Server</dt>
              <dd class="break">{server}</dd>
              <dt>Project</dt>
              <dd>{project.name}</dd>
              <dt>Token</dt>
              <dd class="break">
                <code data-testid="device-token">{created.token}</code>
              </dd>
              <dt>Expires</dt>
              <dd>{created.expires_at ? formatTime(created.expires_at) : "never"}</dd>
            </dl>
            <button type="button" class="small" onClick={() => void navigator.clipboard?.writeText(created.token ?? "")}>
              Copy token
            </button>
          </div>
        </div>
      ) : null}
      {tokens.error ? <ErrorBox message={tokens.error} /> : null}
      {mine.length ? (
        <div class="scroll-x">
          <table class="data">
            <caption>Device tokens of this project</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Created</th>
                <th scope="col">Expires</th>
                <th scope="col">
                  <span class="visually-hidden">Revoke</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {mine.map((t) => (
                <tr key={t.id}>
                  <td>{t.name || t.id.slice(0, 8)}</td>
                  <td>{formatTime(t.created_at)}</td>
                  <td>{t.expires_at ? formatTime(t.expires_at) : "never"}</td>
                  <td>
                    <button type="button" class="small danger-outline" onClick={() => void revoke(t.id)}>
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </>
  );
}

export function ModelsPage({ project }: { project: Project }) {
  const models = useLoad(() => api.listModels(project.id), [project.id]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const promote = async (v: number) => {
    setBusy(true);
    setError("");
    try {
      await api.promote(project.id, v);
      models.reload();
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  };
  const versions = models.data?.versions ?? [];
  const pinned = versions.length > 0 && versions[0] && !versions[0].current;
  return (
    <>
      <Card
        title="Model versions"
        actions={
          pinned ? (
            <button type="button" class="small" disabled={busy} onClick={() => void promote(0)}>
              Follow the newest version
            </button>
          ) : null
        }
      >
        <ErrorBox message={models.error || error} />
        {!models.data && models.loading ? <Spinner /> : null}
        {models.data && versions.length === 0 ? (
          <p class="muted">
            No model yet. <Link href={projectUrl(project.name, "train")}>Train one</Link>.
          </p>
        ) : null}
        <ul class="versions">
          {versions.map((m) => (
            <VersionCard key={m.version} project={project} model={m} onPromote={(v) => void promote(v)} busy={busy} />
          ))}
        </ul>
      </Card>
      <Card title="Connect a phone">
        <DeviceTokens project={project} />
      </Card>
    </>
  );
}
