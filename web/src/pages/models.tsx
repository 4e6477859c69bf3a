import QRCode from "qrcode";
import { useEffect, useState } from "preact/hooks";

import {
  ApiError,
  api,
  describe,
  saveBlob,
  type ModelCard,
  type ModelVersion,
  type Project,
  type ReleasePolicy,
  type Token,
} from "../api";
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
  const statusClass =
    model.status === "current" ? "state-succeeded" : model.status === "candidate" ? "state-queued" : "state-cancelled";
  return (
    <li class="version" data-testid={`version-${model.version}`}>
      <div class="version-head">
        <h3>
          Version {model.version}{" "}
          <span class={`badge ${statusClass}`} data-testid={`status-${model.version}`}>
            {model.status}
          </span>
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
      {model.decision ? (
        <p class={model.decision.promoted ? "muted" : ""} data-testid={`reason-${model.version}`}>
          <strong>Release gate:</strong> {model.decision.promoted ? "promoted" : "kept as a candidate"}:{" "}
          {model.decision.reason}
        </p>
      ) : null}
      {model.warnings.length ? (
        <ul class="warnings" role="list" aria-label={`Warnings of version ${model.version}`}>
          {model.warnings.map((w) => (
            <li key={w} class="warning" data-testid={`warning-${model.version}`}>
              ⚠ {w}
            </li>
          ))}
        </ul>
      ) : null}
      <ModelCardView project={project} version={model.version} />
      <div class="scroll-x">
        <table class="data stack">
          <caption class="visually-hidden">Files of version {model.version}</caption>
          <thead>
            <tr>
              <th scope="col">Format</th>
              <th scope="col">Size</th>
              <th scope="col">
                Evaluation set{model.eval_set_size ? ` (${model.eval_set_size} samples)` : ""}
              </th>
              <th scope="col">Validation accuracy</th>
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
                  {/* The download button sits next to the format name: on a phone it stays on
                      screen however wide the accuracy columns make the table. */}
                  <th scope="row">
                    {a.format} <DownloadButton project={project} version={model.version} format={a.format} />
                  </th>
                  <td data-label="Size">{formatBytes(a.size)}</td>
                  <td data-label="Evaluation set">{a.format in model.eval_accuracy ? pct(model.eval_accuracy[a.format] ?? null) : "–"}</td>
                  <td data-label="Validation">
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
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </li>
  );
}

/** The version's model card, fetched when opened. */
function ModelCardView({ project, version }: { project: Project; version: number }) {
  const [open, setOpen] = useState(false);
  const [card, setCard] = useState<ModelCard | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    if (!open || card) return;
    api.modelCard(project.id, version).then(setCard, (err: unknown) => setError(describe(err)));
  }, [open, card, project.id, version]);
  return (
    <details class="model-card" onToggle={(e) => setOpen((e.target as HTMLDetailsElement).open)}>
      <summary>Model card</summary>
      <ErrorBox message={error} />
      {card ? (
        <div data-testid={`card-${version}`}>
          <dl class="facts">
            <dt>Version</dt>
            <dd>{card.version}</dd>
            <dt>Job</dt>
            <dd class="break">{card.job_id}</dd>
            <dt>Created</dt>
            <dd>{formatTime(card.created_at)}</dd>
            <dt>Input</dt>
            <dd>
              {card.input.width !== undefined ? (
                <>
                  {card.input.width}×{card.input.height} {card.input.color_mode}, value = pixel × {card.input.scale} +{" "}
                  {card.input.offset}
                </>
              ) : (
                // Other tasks (audio, sensors) describe their input with their own keys: list them all.
                Object.entries(card.input as Record<string, unknown>)
                  .map(([k, v]) => `${k} ${Array.isArray(v) ? `[${v.join(", ")}]` : String(v)}`)
                  .join(" · ")
              )}
            </dd>
            <dt>Labels</dt>
            <dd>{card.labels.join(", ")}</dd>
            <dt>Trained on</dt>
            <dd>
              {card.dataset.num_samples} samples (
              {Object.entries(card.dataset.class_counts)
                .map(([k, v]) => `${k}: ${v}`)
                .join(", ")}
              )
            </dd>
            {card.evaluation ? (
              <>
                <dt>Evaluation set</dt>
                <dd>
                  {card.evaluation.eval_set.num_samples} samples, never trained on;{" "}
                  {Object.entries(card.evaluation.formats)
                    .map(([k, v]) => `${k} ${pct(v.accuracy)}`)
                    .join(", ")}
                </dd>
              </>
            ) : null}
            {card.release ? (
              <>
                <dt>Release decision</dt>
                <dd>
                  {card.release.action}: {card.release.reason}
                </dd>
              </>
            ) : null}
          </dl>
          {card.metrics.per_class?.length ? (
            <div class="scroll-x">
              <table class="data">
                <caption>Per label on the evaluation set</caption>
                <thead>
                  <tr>
                    <th scope="col">Label</th>
                    <th scope="col">Precision</th>
                    <th scope="col">Recall</th>
                    <th scope="col">F1</th>
                    <th scope="col">Samples</th>
                  </tr>
                </thead>
                <tbody>
                  {card.metrics.per_class.map((c) => (
                    <tr key={c.label}>
                      <th scope="row">{c.label}</th>
                      <td>{pct(c.precision)}</td>
                      <td>{pct(c.recall)}</td>
                      <td>{pct(c.f1)}</td>
                      <td>{c.support}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ) : null}
          {card.metrics.confusion_matrix?.length ? (
            <div class="scroll-x">
              <table class="data">
                <caption>Confusion matrix (rows: true label, columns: predicted)</caption>
                <thead>
                  <tr>
                    <th scope="col">
                      <span class="visually-hidden">True label</span>
                    </th>
                    {card.labels.map((l) => (
                      <th scope="col" key={l}>
                        {l}
                      </th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {card.metrics.confusion_matrix.map((row, i) => (
                    <tr key={card.labels[i] ?? i}>
                      <th scope="row">{card.labels[i]}</th>
                      {row.map((n, j) => (
                        <td key={j}>{n}</td>
                      ))}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ) : null}
        </div>
      ) : open && !error ? (
        <Spinner />
      ) : null}
    </details>
  );
}

/** Release policy form and the history of which version was current when. */
function ReleasePanel({ project, onChange }: { project: Project; onChange: () => void }) {
  const policy = useLoad(() => api.releasePolicy(project.id), [project.id]);
  const history = useLoad(() => api.releases(project.id), [project.id]);
  const [draft, setDraft] = useState<ReleasePolicy | null>(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const current = draft ?? policy.data?.policy ?? null;
  const save = async (e: Event) => {
    e.preventDefault();
    if (!current) return;
    setBusy(true);
    setError("");
    try {
      await api.setReleasePolicy(project.id, current);
      setDraft(null);
      policy.reload();
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  };
  const rollback = async () => {
    setBusy(true);
    setError("");
    try {
      await api.rollback(project.id, "rolled back from the dashboard");
      history.reload();
      onChange();
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  };
  const completeRollout = async () => {
    const rollout = policy.data?.rollout;
    if (!rollout) return;
    setBusy(true);
    setError("");
    try {
      await api.promote(project.id, rollout.version, "staged rollout completed from the dashboard");
      policy.reload();
      history.reload();
      onChange();
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  };
  const floor = (name: "min_accuracy" | "min_per_class_recall" | "max_int8_drop", label: string) => (
    <div class="field">
      <label for={`policy-${name}`}>{label}</label>
      <input
        id={`policy-${name}`}
        type="number"
        min={0}
        max={1}
        step={0.01}
        placeholder="none"
        value={current?.[name] ?? ""}
        onInput={(e) => {
          const text = (e.target as HTMLInputElement).value;
          if (current) setDraft({ ...current, [name]: text === "" ? null : Number(text) });
        }}
      />
    </div>
  );
  return (
    <>
      <ErrorBox message={policy.error || history.error || error} />
      {current ? (
        <form class="form-grid" onSubmit={(e) => void save(e)} aria-label="Release policy">
          <div class="field">
            <label for="policy-mode">Mode</label>
            <select
              id="policy-mode"
              value={current.mode}
              onChange={(e) =>
                setDraft({ ...current, mode: (e.target as HTMLSelectElement).value as ReleasePolicy["mode"] })
              }
            >
              <option value="auto">auto: promote versions that pass</option>
              <option value="manual">manual: never promote by itself</option>
            </select>
          </div>
          <div class="field">
            <label for="policy-margin">Allowed loss vs current</label>
            <input
              id="policy-margin"
              type="number"
              min={0}
              max={1}
              step={0.01}
              value={current.margin}
              onInput={(e) => setDraft({ ...current, margin: Number((e.target as HTMLInputElement).value) })}
            />
          </div>
          {floor("min_accuracy", "Minimum accuracy")}
          {floor("min_per_class_recall", "Minimum recall per label")}
          {floor("max_int8_drop", "Maximum int8 drop")}
          <div class="field">
            <label for="policy-rollout">Staged rollout: devices first (%)</label>
            <input
              id="policy-rollout"
              type="number"
              min={1}
              max={100}
              step={1}
              value={current.rollout_percent}
              onInput={(e) => setDraft({ ...current, rollout_percent: Number((e.target as HTMLInputElement).value) })}
            />
          </div>
          <div class="field">
            <label for="policy-rollout-hours">The rest follow after (hours)</label>
            <input
              id="policy-rollout-hours"
              type="number"
              min={0}
              step={1}
              placeholder="when promoted by hand"
              value={current.rollout_hours ?? ""}
              onInput={(e) => {
                const text = (e.target as HTMLInputElement).value;
                setDraft({ ...current, rollout_hours: text === "" ? null : Number(text) });
              }}
            />
          </div>
          <div class="field wide">
            <button type="submit" class="primary" disabled={busy || !draft}>
              Save policy
            </button>{" "}
            <button type="button" disabled={busy} onClick={() => void rollback()}>
              Roll back the current version
            </button>
            {policy.data?.pinned ? <span class="muted"> The current version is pinned.</span> : null}
            {policy.data?.rollout ? (
              <p class="notice" data-testid="rollout">
                Staged rollout: version {policy.data.rollout.version} goes to {policy.data.rollout.percent}% of devices;
                the others keep version {policy.data.rollout.previous_version}{" "}
                {policy.data.rollout.complete_at
                  ? `until ${formatTime(policy.data.rollout.complete_at)}`
                  : "until you make it current by hand"}
                .{" "}
                <button type="button" class="small" disabled={busy} onClick={() => void completeRollout()}>
                  Send to every device now
                </button>
              </p>
            ) : null}
          </div>
        </form>
      ) : null}
      {history.data?.releases.length ? (
        <div class="scroll-x">
          <table class="data" data-testid="release-history">
            <caption>Which version was current when, and why</caption>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Version</th>
                <th scope="col">Before</th>
                <th scope="col">Action</th>
                <th scope="col">By</th>
                <th scope="col">Reason</th>
              </tr>
            </thead>
            <tbody>
              {history.data.releases.map((r) => (
                <tr key={r.id}>
                  <td>{formatTime(r.created_at)}</td>
                  <td>{r.version ?? "–"}</td>
                  <td>{r.previous_version ?? "–"}</td>
                  <td>{r.action}</td>
                  <td>{r.actor}</td>
                  <td>{r.reason}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </>
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
          <table class="data stack">
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
                  <td data-label="Created">{formatTime(t.created_at)}</td>
                  <td data-label="Expires">{t.expires_at ? formatTime(t.expires_at) : "never"}</td>
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
  const [historyKey, setHistoryKey] = useState(0);
  return (
    <>
      <Card title="Model versions">
        <p class="muted">
          Phones get the <strong>current</strong> version. A new version becomes current only if it is not worse than
          the current one on the project's fixed evaluation set (the release gate); otherwise it stays a{" "}
          <strong>candidate</strong> with the reason, until you make it current.
        </p>
        <ErrorBox message={models.error || error} />
        {!models.data && models.loading ? <Spinner /> : null}
        {models.data && versions.length === 0 ? (
          <p class="muted">
            No model yet. <Link href={projectUrl(project.name, "train")}>Train one</Link>.
          </p>
        ) : null}
        <ul class="versions">
          {versions.map((m) => (
            <VersionCard
              key={m.version}
              project={project}
              model={m}
              onPromote={(v) => void promote(v).then(() => setHistoryKey((k) => k + 1))}
              busy={busy}
            />
          ))}
        </ul>
      </Card>
      <Card title="Release policy and history">
        <ReleasePanel key={historyKey} project={project} onChange={() => models.reload()} />
      </Card>
      <Card title="Connect a phone">
        <DeviceTokens project={project} />
      </Card>
    </>
  );
}
