import { useEffect, useRef, useState } from "preact/hooks";

import { api, describe, type Project, type Sample } from "../api";
import { ErrorBox, formatBytes, formatTime } from "./common";
import { SampleLarge } from "./samplepreview";

/**
 * What a sample's client id says to a person: the dashboard and the CLI upload under
 * `<label>/<file name>`; an id the server derived from the bytes (`sha256:…`) names no file.
 */
export function clientIdText(clientId: string): string {
  if (clientId.startsWith("sha256:")) return "none sent (the server used the sample’s SHA-256)";
  return clientId;
}

/** The file name in a client id (`rose/IMG_1.jpg` → `IMG_1.jpg`), or "" when it names no file. */
export function fileNameOf(clientId: string): string {
  if (!clientId || clientId.startsWith("sha256:")) return "";
  return clientId.split("/").pop() ?? "";
}

/** Open a sample: see it, relabel it or delete it. `onChanged` gets the new label ("" = deleted). */
export function SampleDialog({
  project,
  sample,
  onClose,
  onChanged,
}: {
  project: Project;
  sample: Sample;
  onClose: () => void;
  onChanged: (label: string) => void;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [label, setLabel] = useState(sample.label);
  const [error, setError] = useState("");
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    const d = dialog.current;
    if (d && !d.open) d.showModal();
  }, []);

  const act = async (fn: () => Promise<unknown>, newLabel: string) => {
    setBusy(true);
    setError("");
    try {
      await fn();
      onChanged(newLabel);
      dialog.current?.close();
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <dialog ref={dialog} onClose={onClose} aria-labelledby="sample-title" class="sample-dialog">
      <h2 id="sample-title">
        {fileNameOf(sample.client_id) || "Sample"} “{sample.label}”
      </h2>
      <SampleLarge sample={sample} />
      <dl class="facts">
        <dt>Size</dt>
        <dd>
          {sample.media_type.startsWith("image/") ? `${sample.width}×${sample.height} px, ` : ""}
          {formatBytes(sample.size)} ({sample.media_type})
        </dd>
        <dt>Uploaded</dt>
        <dd>{formatTime(sample.created_at)}</dd>
        <dt>Client id</dt>
        <dd class="break" data-testid="client-id">
          {clientIdText(sample.client_id)}
        </dd>
      </dl>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          void act(() => api.relabelSample(project.id, sample.id, label.trim()), label.trim());
        }}
      >
        <label for="relabel">New label</label>
        {project.labels_fixed ? (
          <select id="relabel" value={label} onChange={(e) => setLabel((e.target as HTMLSelectElement).value)}>
            {project.labels.map((l) => (
              <option key={l} value={l}>
                {l}
              </option>
            ))}
          </select>
        ) : (
          <input id="relabel" list="known-labels-dialog" value={label} onInput={(e) => setLabel((e.target as HTMLInputElement).value)} />
        )}
        <datalist id="known-labels-dialog">
          {project.labels.map((l) => (
            <option key={l} value={l} />
          ))}
        </datalist>
        <button type="submit" class="primary" disabled={busy || !label.trim() || label.trim() === sample.label}>
          Relabel
        </button>
      </form>
      <ErrorBox message={error} />
      <div class="row dialog-actions">
        {confirming ? (
          <button type="button" class="danger" disabled={busy} onClick={() => void act(() => api.deleteSample(project.id, sample.id), "")}>
            Really delete
          </button>
        ) : (
          <button type="button" class="danger-outline" onClick={() => setConfirming(true)}>
            Delete sample
          </button>
        )}
        <button type="button" onClick={() => dialog.current?.close()}>
          Close
        </button>
      </div>
    </dialog>
  );
}

