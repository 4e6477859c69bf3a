import { useEffect, useState } from "preact/hooks";

import { ApiError, api, describe, type Prediction, type Project } from "../api";
import { Card, ErrorBox, pct } from "../components/common";
import { Webcam } from "../components/webcam";
import { Link, projectUrl } from "../router";

export function TryPage({ project }: { project: Project }) {
  const [image, setImage] = useState<Blob | null>(null);
  const [preview, setPreview] = useState("");
  const [result, setResult] = useState<Prediction | null>(null);
  const [error, setError] = useState("");
  const [noModel, setNoModel] = useState(false);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (!image) return;
    const url = URL.createObjectURL(image);
    setPreview(url);
    return () => URL.revokeObjectURL(url);
  }, [image]);

  const classify = async (blob: Blob) => {
    setImage(blob);
    setBusy(true);
    setError("");
    setResult(null);
    try {
      setResult(await api.predict(project.id, blob, 3));
    } catch (err) {
      if (err instanceof ApiError && err.code === 53) setNoModel(true);
      else setError(describe(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="grid-2">
      <Card title="Try the current model">
        {noModel ? (
          <p class="notice">
            This project has no model yet. <Link href={projectUrl(project.name, "train")}>Train one</Link> first.
          </p>
        ) : null}
        <div class="field">
          <label for="try-file">Pick an image</label>
          <input
            id="try-file"
            type="file"
            accept="image/jpeg,image/png,image/webp"
            onChange={(e) => {
              const file = (e.target as HTMLInputElement).files?.[0];
              if (file) void classify(file);
            }}
          />
        </div>
        <details class="webcam-box">
          <summary>Or take a webcam frame</summary>
          <Webcam
            width={Math.max(project.input_spec.width, 224)}
            height={Math.round(
              (Math.max(project.input_spec.width, 224) * project.input_spec.height) / project.input_spec.width,
            )}
            onCapture={(b) => void classify(b)}
            captureText="Classify this frame"
            busy={busy}
          />
        </details>
        <ErrorBox message={error} />
      </Card>
      <Card title="Prediction">
        {preview ? <img class="preview" src={preview} alt="The image being classified" /> : <p class="muted">No image yet.</p>}
        <div aria-live="polite" aria-busy={busy}>
          {busy ? <p class="muted">Classifying…</p> : null}
          {result ? (
            <>
              <ol class="predictions" data-testid="predictions">
                {result.predictions.map((p) => (
                  <li key={p.index}>
                    <span class="pred-name">{p.label}</span>
                    <span class="bar-track" aria-hidden="true">
                      <span class="bar-fill" style={{ width: `${p.score * 100}%` }} />
                    </span>
                    <span class="pred-score">{pct(p.score)}</span>
                  </li>
                ))}
              </ol>
              <p class="muted">
                Version {result.version} (float32 TFLite on the server) · {result.latency_ms.toFixed(1)} ms
              </p>
            </>
          ) : null}
        </div>
      </Card>
    </div>
  );
}
