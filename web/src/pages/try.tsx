import { useEffect, useState } from "preact/hooks";

import { ApiError, DETECTION, api, describe, type Prediction, type Project } from "../api";
import { Card, ErrorBox, pct } from "../components/common";
import { SensorPlot, Waveform } from "../components/samplepreview";
import { Webcam } from "../components/webcam";
import { Link, projectUrl } from "../router";
import { fileKind } from "../upload";

export function TryPage({ project }: { project: Project }) {
  // The server's Predict does not run detectors (yet): say so rather than fail on upload.
  if (project.task === DETECTION) return <DetectionTry project={project} />;
  return <ClassifierTry project={project} />;
}

function DetectionTry({ project }: { project: Project }) {
  return (
    <Card title="Try the current model">
      <p class="notice" data-testid="try-detection">
        The server does not run object detectors for “Try it” yet. The{" "}
        <Link href={projectUrl(project.name, "models/current")}>evaluation</Link> shows the exported model’s
        detections on validation images beside their ground truth; on a phone, the Flutter package’s{" "}
        <code>ObjectDetector</code> runs the downloaded <code>.tflite</code> file.
      </p>
    </Card>
  );
}

function ClassifierTry({ project }: { project: Project }) {
  const [image, setImage] = useState<Blob | null>(null);
  const [preview, setPreview] = useState("");
  const [result, setResult] = useState<Prediction | null>(null);
  const [error, setError] = useState("");
  const [noModel, setNoModel] = useState(false);
  const [busy, setBusy] = useState(false);
  // Audio and sensor projects: the picked file's bytes, drawn as a waveform or line plot.
  const [bytes, setBytes] = useState<ArrayBuffer | null>(null);
  const kind = fileKind(project.task);
  const isImage = project.task === "image-classification";

  useEffect(() => {
    if (!image) return;
    const url = URL.createObjectURL(image);
    setPreview(url);
    let live = true;
    if (!isImage) void image.arrayBuffer().then((b) => live && setBytes(b));
    return () => {
      live = false;
      URL.revokeObjectURL(url);
    };
  }, [image, isImage]);

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
          <label for="try-file">{isImage ? "Pick an image" : `Pick a file (${kind.noun})`}</label>
          <input
            id="try-file"
            type="file"
            accept={kind.accept}
            onChange={(e) => {
              const file = (e.target as HTMLInputElement).files?.[0];
              if (file) void classify(file);
            }}
          />
        </div>
        {isImage ? (
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
        ) : null}
        <ErrorBox message={error} />
      </Card>
      <Card title="Prediction">
        {!preview ? (
          <p class="muted">{isImage ? "No image yet." : "No sample yet."}</p>
        ) : isImage ? (
          <img class="preview" src={preview} alt="The image being classified" />
        ) : kind.accept.includes("wav") ? (
          <div class="sample-large">
            {bytes ? <Waveform bytes={bytes} width={280} height={96} /> : null}
            <audio class="sample-audio" controls src={preview} />
          </div>
        ) : bytes ? (
          <div class="sample-large">
            <SensorPlot bytes={bytes} mediaType={image?.type ?? ""} width={280} height={140} />
          </div>
        ) : null}
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
