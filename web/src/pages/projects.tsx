import { useState } from "preact/hooks";

import { DETECTION, api, describe, describeInput, type Project } from "../api";
import { Card, ErrorBox, Spinner, formatTime, useLoad } from "../components/common";
import { Link, navigate, projectUrl } from "../router";

function CreateProject({ onCreated }: { onCreated: (p: Project) => void }) {
  const [name, setName] = useState("");
  const [labels, setLabels] = useState("");
  const [width, setWidth] = useState(96);
  const [height, setHeight] = useState(96);
  const [colorMode, setColorMode] = useState("rgb");
  const [normalization, setNormalization] = useState("zero-one");
  const [task, setTask] = useState("image-classification");
  const [rateHz, setRateHz] = useState(16000);
  const [clipMs, setClipMs] = useState(1000);
  const [longClips, setLongClips] = useState("reject");
  const [channels, setChannels] = useState("x, y, z");
  const [sensorRate, setSensorRate] = useState(50);
  const [windowLen, setWindowLen] = useState(100);
  const [stride, setStride] = useState(50);
  const [framing, setFraming] = useState("windows");
  const [maxDetections, setMaxDetections] = useState(10);
  const [scoreThreshold, setScoreThreshold] = useState(0.25);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      const project = await api.createProject({
        name: name.trim(),
        task,
        labels: labels
          .split(",")
          .map((l) => l.trim())
          .filter(Boolean),
        // Each task sends only its own settings; the server fills in the rest.
        input_spec:
          task === "audio-classification"
            ? { audio: { sample_rate_hz: rateHz, clip_ms: clipMs, long_clips: longClips } }
            : task === "sensor-classification"
              ? {
                  sensor: {
                    channels: channels
                      .split(",")
                      .map((c) => c.trim())
                      .filter(Boolean),
                    rate_hz: sensorRate,
                    window: windowLen,
                    stride,
                    framing,
                  },
                }
              : task === DETECTION
                ? {
                    width,
                    height,
                    color_mode: colorMode,
                    normalization,
                    detection: { max_detections: maxDetections, score_threshold: scoreThreshold, iou_threshold: 0.5 },
                  }
                : { width, height, color_mode: colorMode, normalization },
      });
      onCreated(project);
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  };

  const int = (set: (n: number) => void) => (e: Event) =>
    set(Number((e.target as HTMLInputElement).value));
  const pick = (set: (v: string) => void) => (e: Event) => set((e.target as HTMLSelectElement).value);

  return (
    <form class="form-grid" onSubmit={(e) => void submit(e)} aria-label="New project">
      <div class="field">
        <label for="p-name">Name</label>
        <input
          id="p-name"
          required
          maxLength={128}
          value={name}
          onInput={(e) => setName((e.target as HTMLInputElement).value)}
          placeholder="flowers"
        />
      </div>
      <div class="field">
        <label for="p-task">Task</label>
        <select
          id="p-task"
          value={task}
          onChange={(e) => {
            const t = (e.target as HTMLSelectElement).value;
            // The detector's default input (a box needs more pixels than a class).
            if (t === DETECTION && task !== DETECTION && width === 96 && height === 96) {
              setWidth(192);
              setHeight(192);
            }
            setTask(t);
          }}
        >
          <option value="image-classification">Image classification</option>
          <option value={DETECTION}>Object detection (boxes)</option>
          <option value="audio-classification">Audio classification (WAV)</option>
          <option value="sensor-classification">Sensor classification (CSV/JSON)</option>
        </select>
      </div>
      <div class="field wide">
        <label for="p-labels">Labels</label>
        <input
          id="p-labels"
          value={labels}
          onInput={(e) => setLabels((e.target as HTMLInputElement).value)}
          placeholder="rose, tulip, daisy"
          aria-describedby="p-labels-help"
        />
        <span id="p-labels-help" class="hint">
          {task === DETECTION
            ? "The box classes, comma-separated. Leave empty for an open set (it grows with the labels you draw)."
            : "Comma-separated. Leave empty for an open label set (labels come with the uploads, e.g. from folder names)."}
        </span>
      </div>
      {task === "audio-classification" ? (
        <>
          <div class="field">
            <label for="p-rate">Sample rate (Hz)</label>
            <input id="p-rate" type="number" min={4000} max={48000} value={rateHz} onInput={int(setRateHz)} />
          </div>
          <div class="field">
            <label for="p-clip">Clip length (ms)</label>
            <input id="p-clip" type="number" min={100} max={10000} value={clipMs} onInput={int(setClipMs)} />
          </div>
          <div class="field">
            <label for="p-long">Longer recordings</label>
            <select id="p-long" value={longClips} onChange={pick(setLongClips)}>
              <option value="reject">Reject them</option>
              <option value="split">Split into clips</option>
            </select>
          </div>
        </>
      ) : task === "sensor-classification" ? (
        <>
          <div class="field wide">
            <label for="p-channels">Channels</label>
            <input
              id="p-channels"
              value={channels}
              onInput={(e) => setChannels((e.target as HTMLInputElement).value)}
              aria-describedby="p-channels-help"
            />
            <span id="p-channels-help" class="hint">
              Comma-separated, in model order; every CSV header or JSON `channels` must name each one.
            </span>
          </div>
          <div class="field">
            <label for="p-srate">Sampling rate (Hz)</label>
            <input id="p-srate" type="number" min={0.1} max={10000} step="any" value={sensorRate} onInput={int(setSensorRate)} />
          </div>
          <div class="field">
            <label for="p-window">Window (readings)</label>
            <input id="p-window" type="number" min={4} max={10000} value={windowLen} onInput={int(setWindowLen)} />
          </div>
          <div class="field">
            <label for="p-stride">Stride (readings)</label>
            <input id="p-stride" type="number" min={1} max={windowLen} value={stride} onInput={int(setStride)} />
          </div>
          <div class="field">
            <label for="p-framing">Recordings</label>
            <select id="p-framing" value={framing} onChange={pick(setFraming)}>
              <option value="windows">Cut into windows</option>
              <option value="pad">One padded window each</option>
            </select>
          </div>
        </>
      ) : (
        <>
          <div class="field">
            <label for="p-width">Input width (px)</label>
            <input id="p-width" type="number" min={8} max={1024} value={width} onInput={int(setWidth)} />
          </div>
          <div class="field">
            <label for="p-height">Input height (px)</label>
            <input id="p-height" type="number" min={8} max={1024} value={height} onInput={int(setHeight)} />
          </div>
          <div class="field">
            <label for="p-color">Colour mode</label>
            <select id="p-color" value={colorMode} onChange={(e) => setColorMode((e.target as HTMLSelectElement).value)}>
              <option value="rgb">RGB</option>
              <option value="grayscale">Grayscale</option>
            </select>
          </div>
          <div class="field">
            <label for="p-norm">Normalisation</label>
            <select
              id="p-norm"
              value={normalization}
              onChange={(e) => setNormalization((e.target as HTMLSelectElement).value)}
            >
              <option value="zero-one">0…1 (x/255)</option>
              <option value="minus-one-one">−1…1 (x/127.5−1)</option>
              <option value="raw">raw (0…255)</option>
            </select>
          </div>
          {task === DETECTION ? (
            <>
              <div class="field">
                <label for="p-maxdet">Max detections per image</label>
                <input id="p-maxdet" type="number" min={1} max={100} value={maxDetections} onInput={int(setMaxDetections)} />
              </div>
              <div class="field">
                <label for="p-score">Score threshold</label>
                <input
                  id="p-score"
                  type="number"
                  min={0}
                  max={0.99}
                  step={0.05}
                  value={scoreThreshold}
                  onInput={(e) => setScoreThreshold(Number((e.target as HTMLInputElement).value))}
                />
              </div>
            </>
          ) : null}
        </>
      )}
      <div class="field wide">
        <ErrorBox message={error} />
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Creating…" : "Create project"}
        </button>
      </div>
    </form>
  );
}

/** The CLI's quick start (`mobiletrain` with no arguments), shown while there is no project. */
export const FIRST_RUN: { step: string; command: string; here: string }[] = [
  {
    step: "Start the server",
    command: "mobiletrain serve",
    here: "Done: this dashboard is it. Add --lan so that phones can reach the server.",
  },
  {
    step: "Create a project",
    command: "mobiletrain projects create digits --width 32 --height 32",
    here: "Or use the “New project” form below.",
  },
  {
    step: "Upload labelled images (images/<label>/*.png)",
    command: "mobiletrain upload ./images -p digits",
    here: "Or drop the folder on the project’s Dataset page.",
  },
  {
    step: "Train, then take the model to the phone",
    command: "mobiletrain train -p digits --watch",
    here: "Or use the Train tab; then mobiletrain models pull -p digits -o model.tflite, or the Models tab’s download and QR code.",
  },
];

function FirstRun() {
  return (
    <div data-testid="first-run">
      <p>No projects yet. Four steps from images to a model on a phone:</p>
      <ol class="first-run">
        {FIRST_RUN.map((s) => (
          <li key={s.step}>
            <strong>{s.step}</strong>
            <code class="command">{s.command}</code>
            <span class="hint">{s.here}</span>
          </li>
        ))}
      </ol>
      <p class="hint">
        On the server’s machine the CLI reads the admin token from the data folder (file{" "}
        <code>admin-token</code>); elsewhere pass <code>--token</code> or set{" "}
        <code>MOBILETRAIN_TOKEN</code>. Check an install with <code>mobiletrain doctor</code>.
      </p>
    </div>
  );
}

export function ProjectsPage() {
  const { data, error, loading } = useLoad(() => api.listProjects(), []);
  return (
    <>
      <h1>Projects</h1>
      <Card title="Your projects">
        <ErrorBox message={error} />
        {loading && !data ? <Spinner /> : null}
        {data && data.length === 0 ? <FirstRun /> : null}
        {data && data.length > 0 ? (
          <ul class="project-list">
            {data.map((p) => (
              <li key={p.id}>
                <Link href={projectUrl(p.name)} class="project-link">
                  <strong>{p.name}</strong>
                  <span class="muted">
                    {describeInput(p.task, p.input_spec)} ·{" "}
                    {p.labels.length} labels · created {formatTime(p.created_at)}
                    {p.promoted_version ? ` · pinned v${p.promoted_version}` : ""}
                  </span>
                </Link>
              </li>
            ))}
          </ul>
        ) : null}
      </Card>
      <Card title="New project">
        <CreateProject onCreated={(p) => navigate(projectUrl(p.name))} />
      </Card>
    </>
  );
}
