import { useState } from "preact/hooks";

import { ARCHITECTURES, FORMATS, api, describe, type Hyperparameters, type Project } from "../api";
import { Card, ErrorBox, Spinner, formatTime, useLoad } from "../components/common";
import { Link, navigate, projectUrl } from "../router";

/** The server's defaults (HyperparametersModel), shown pre-filled. */
const DEFAULTS: Required<Omit<Hyperparameters, "base_model">> = {
  epochs: 10,
  batch_size: 32,
  learning_rate: 0.001,
  validation_split: 0.2,
  seed: 42,
  architecture: "small-cnn",
  augment_flip: false,
  augment_rotation: 0,
  augment_zoom: 0,
  augment_contrast: 0,
  early_stopping_patience: 0,
  class_weights: true,
  dropout: 0.2,
  formats: [...FORMATS],
  allow_random_init: false,
};

function NumberField({
  id,
  label,
  value,
  onChange,
  min,
  max,
  step,
  hint,
}: {
  id: string;
  label: string;
  value: number;
  onChange: (v: number) => void;
  min: number;
  max?: number;
  step?: number | "any";
  hint?: string;
}) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <input
        id={id}
        name={id}
        type="number"
        min={min}
        max={max}
        step={step ?? 1}
        value={value}
        required
        aria-describedby={hint ? `${id}-hint` : undefined}
        onInput={(e) => onChange(Number((e.target as HTMLInputElement).value))}
      />
      {hint ? (
        <span id={`${id}-hint`} class="hint">
          {hint}
        </span>
      ) : null}
    </div>
  );
}

function TrainForm({ project }: { project: Project }) {
  const [hp, setHp] = useState({ ...DEFAULTS });
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  // Audio and sensor tasks train their own small network with their own augmentation: the model
  // choice, MobileNet fallback and image augmentations apply to images only (the server refuses
  // another architecture for audio), so they are not offered there.
  const isImage = project.task === "image-classification";
  const set =
    <K extends keyof typeof DEFAULTS>(key: K) =>
    (value: (typeof DEFAULTS)[K]) =>
      setHp({ ...hp, [key]: value });

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      const job = await api.startJob(project.id, hp);
      navigate(projectUrl(project.name, `jobs/${job.id}`));
    } catch (err) {
      setError(describe(err));
      setBusy(false);
    }
  };

  const toggleFormat = (fmt: string, on: boolean) => {
    const formats = on ? [...hp.formats, fmt] : hp.formats.filter((f) => f !== fmt);
    setHp({ ...hp, formats: FORMATS.filter((f) => formats.includes(f) || f === "keras") });
  };

  return (
    <form onSubmit={(e) => void submit(e)} aria-label="Training settings">
      <div class="form-grid">
        <NumberField id="epochs" label="Epochs" value={hp.epochs} onChange={set("epochs")} min={1} max={1000} />
        <NumberField id="batch_size" label="Batch size" value={hp.batch_size} onChange={set("batch_size")} min={1} max={4096} />
        <NumberField
          id="learning_rate"
          label="Learning rate"
          value={hp.learning_rate}
          onChange={set("learning_rate")}
          min={0}
          max={1}
          step="any"
          hint="Initial rate of a cosine decay."
        />
        <NumberField
          id="validation_split"
          label="Validation fraction"
          value={hp.validation_split}
          onChange={set("validation_split")}
          min={0.01}
          max={0.99}
          step={0.01}
        />
        {isImage ? (
          <div class="field">
            <label for="architecture">Model</label>
            <select
              id="architecture"
              value={hp.architecture}
              onChange={(e) => set("architecture")((e.target as HTMLSelectElement).value)}
            >
              {ARCHITECTURES.map((a) => (
                <option key={a} value={a}>
                  {a}
                </option>
              ))}
            </select>
          </div>
        ) : null}
        <NumberField id="dropout" label="Dropout" value={hp.dropout} onChange={set("dropout")} min={0} max={0.99} step={0.05} />
      </div>
      <details class="advanced">
        <summary>{isImage ? "Augmentation, early stopping and exports" : "Class weights, early stopping and exports"}</summary>
        <div class="form-grid">
          {isImage ? (
            <div class="field check">
              <input
                id="augment_flip"
                type="checkbox"
                checked={hp.augment_flip}
                onChange={(e) => set("augment_flip")((e.target as HTMLInputElement).checked)}
              />
              <label for="augment_flip">Random horizontal flips</label>
            </div>
          ) : null}
          <div class="field check">
            <input
              id="class_weights"
              type="checkbox"
              checked={hp.class_weights}
              onChange={(e) => set("class_weights")((e.target as HTMLInputElement).checked)}
            />
            <label for="class_weights">Weight classes by rarity</label>
          </div>
          {isImage ? (
            <>
              <div class="field check">
                <input
                  id="allow_random_init"
                  type="checkbox"
                  checked={hp.allow_random_init}
                  onChange={(e) => set("allow_random_init")((e.target as HTMLInputElement).checked)}
                />
                <label for="allow_random_init">
                  Train a MobileNet from scratch if its pretrained weights cannot be loaded (otherwise the job fails)
                </label>
              </div>
              <NumberField id="augment_rotation" label="Rotation (0–1)" value={hp.augment_rotation} onChange={set("augment_rotation")} min={0} max={1} step={0.05} />
              <NumberField id="augment_zoom" label="Zoom (0–1)" value={hp.augment_zoom} onChange={set("augment_zoom")} min={0} max={1} step={0.05} />
              <NumberField id="augment_contrast" label="Contrast (0–1)" value={hp.augment_contrast} onChange={set("augment_contrast")} min={0} max={1} step={0.05} />
            </>
          ) : null}
          <NumberField
            id="early_stopping_patience"
            label="Early stopping patience"
            value={hp.early_stopping_patience}
            onChange={set("early_stopping_patience")}
            min={0}
            hint="Epochs without improvement; 0 = off."
          />
          <NumberField id="seed" label="Random seed" value={hp.seed} onChange={set("seed")} min={0} />
          <fieldset class="field wide">
            <legend>Export formats</legend>
            <div class="row">
              {FORMATS.map((f) => (
                <label key={f} class="check">
                  <input
                    type="checkbox"
                    checked={hp.formats.includes(f)}
                    disabled={f === "keras"}
                    onChange={(e) => toggleFormat(f, (e.target as HTMLInputElement).checked)}
                  />
                  {f}
                </label>
              ))}
            </div>
          </fieldset>
        </div>
      </details>
      <ErrorBox message={error} />
      <div class="row">
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Starting…" : "Start training"}
        </button>
        <button type="button" onClick={() => setHp({ ...DEFAULTS })}>
          Reset to defaults
        </button>
      </div>
    </form>
  );
}

export function TrainPage({ project }: { project: Project }) {
  const jobs = useLoad(() => api.listJobs(project.id), [project.id]);
  return (
    <div class="grid-2">
      <Card title="Train a model">
        <TrainForm project={project} />
      </Card>
      <Card title="Jobs" actions={<button type="button" onClick={jobs.reload}>Refresh</button>}>
        <ErrorBox message={jobs.error} />
        {!jobs.data && jobs.loading ? <Spinner /> : null}
        {jobs.data && jobs.data.jobs.length === 0 ? <p class="muted">No training jobs yet.</p> : null}
        {jobs.data && jobs.data.jobs.length > 0 ? (
          <div class="scroll-x">
            <table class="data stack">
              <caption class="visually-hidden">Training jobs, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Started</th>
                  <th scope="col">State</th>
                  <th scope="col">Epochs</th>
                  <th scope="col">Model</th>
                </tr>
              </thead>
              <tbody>
                {jobs.data.jobs.map((j) => (
                  <tr key={j.id}>
                    <td>
                      <Link href={projectUrl(project.name, `jobs/${j.id}`)}>{formatTime(j.created_at)}</Link>
                    </td>
                    <td>
                      <span class={`badge state-${j.state}`}>{j.state}</span>
                    </td>
                    <td data-label="Epochs">{j.hyperparameters.epochs}</td>
                    <td data-label="Model">
                      {j.model_version ? (
                        <Link href={projectUrl(project.name, `models/${j.model_version}`)}>v{j.model_version}</Link>
                      ) : (
                        "–"
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </Card>
    </div>
  );
}
