import { useEffect, useRef, useState } from "preact/hooks";

import { api, describe, type Job, type JobEvent, type JobState, type Metrics, type Project } from "../api";
import { LineChart, type Series } from "../components/charts";
import { Card, ErrorBox, ProgressBar, Spinner, formatDuration, formatTime, num, pct, useLoad } from "../components/common";
import { EvaluationView } from "../components/evaluation";
import { Link, projectUrl } from "../router";
import { watchJob, type StreamStatus } from "../sse";

interface EpochRow {
  epoch: number;
  loss: number | null;
  accuracy: number | null;
  val_loss: number | null;
  val_accuracy: number | null;
  seconds: number | null;
}

interface Progress {
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  samples_per_second: number;
  eta_seconds: number;
  job_eta_seconds?: number;
  // "preparing data" while the worker reads the samples (batch/batches = samples read / to read).
  phase?: string;
}

interface ReleaseOutcome {
  version: number;
  status: string;
  promoted: boolean;
  reason: string;
  warnings: string[];
  formats?: Record<string, number>;
  current_formats?: Record<string, number>;
  current_version?: number | null;
}

interface LiveState {
  state: JobState | "";
  error: string;
  modelVersion: number | null;
  epochs: Map<number, EpochRow>;
  plannedEpochs: number;
  progress: Progress | null;
  evaluation: Metrics | null;
  logs: { seq: number; message: string; at: string }[];
  lastSeq: number;
  phase: string;
  phaseEta: number | null;
  release: ReleaseOutcome | null;
  warnings: string[];
}

const TRAIN = "#2563eb";
const VAL = "#ea580c";

const numOrNull = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

function apply(s: LiveState, ev: JobEvent): void {
  s.lastSeq = ev.seq;
  const d = ev.data;
  switch (ev.kind) {
    case "state":
      s.state = String(d.state) as JobState;
      if (typeof d.error === "string") s.error = d.error;
      if (typeof d.model_version === "number") s.modelVersion = d.model_version;
      // A retried attempt resumes from its last checkpoint: epochs it repeats replace the
      // earlier rows (they are keyed by epoch number), so nothing needs resetting here.
      if (s.state !== "running") s.progress = null;
      break;
    case "progress":
      s.progress = d as unknown as Progress;
      s.plannedEpochs = Number(d.epochs) || s.plannedEpochs;
      break;
    case "epoch": {
      const epoch = Number(d.epoch);
      s.plannedEpochs = Number(d.epochs) || s.plannedEpochs;
      s.epochs.set(epoch, {
        epoch,
        loss: numOrNull(d.loss),
        accuracy: numOrNull(d.accuracy),
        val_loss: numOrNull(d.val_loss),
        val_accuracy: numOrNull(d.val_accuracy),
        seconds: numOrNull(d.seconds),
      });
      break;
    }
    case "evaluation":
      s.evaluation = d as Metrics;
      break;
    case "log":
      s.logs.push({ seq: ev.seq, message: String(d.message ?? ""), at: ev.created_at });
      if (d.level === "warning") s.warnings.push(String(d.message ?? ""));
      break;
    case "phase":
      s.phase = String(d.phase ?? "");
      s.phaseEta = numOrNull(d.eta_seconds);
      break;
    case "release":
      s.release = d as unknown as ReleaseOutcome;
      break;
  }
}

const STATUS_TEXT: Record<StreamStatus, string> = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "connection lost, reconnecting…",
  ended: "finished",
  error: "not available",
};

export function JobPage({ project, jobId }: { project: Project; jobId: string }) {
  const job = useLoad<Job>(() => api.getJob(jobId), [jobId]);
  const live = useRef<LiveState>({
    state: "",
    error: "",
    modelVersion: null,
    epochs: new Map(),
    plannedEpochs: 0,
    progress: null,
    evaluation: null,
    logs: [],
    lastSeq: 0,
    phase: "",
    phaseEta: null,
    release: null,
    warnings: [],
  });
  const [, setTick] = useState(0);
  const [status, setStatus] = useState<StreamStatus>("connecting");
  const [cancelError, setCancelError] = useState("");
  const [cancelling, setCancelling] = useState(false);
  // Cancelling throws the run away: the button first asks, a second click confirms.
  const [confirmCancel, setConfirmCancel] = useState(false);

  useEffect(() => {
    live.current = {
      state: "",
      error: "",
      modelVersion: null,
      epochs: new Map(),
      plannedEpochs: 0,
      progress: null,
      evaluation: null,
      logs: [],
      lastSeq: 0,
      phase: "",
      phaseEta: null,
      release: null,
      warnings: [],
    };
    let frame = 0;
    const stop = watchJob(jobId, 0, {
      onEvent: (ev) => {
        apply(live.current, ev);
        // Batch re-renders: a resumed stream may deliver hundreds of events at once.
        if (!frame) {
          frame = requestAnimationFrame(() => {
            frame = 0;
            setTick((t) => t + 1);
          });
        }
      },
      onStatus: (st) => {
        setStatus(st);
        if (st === "ended") job.reload();
      },
    });
    return () => {
      stop();
      cancelAnimationFrame(frame);
    };
  }, [jobId]);

  const s = live.current;
  const j = job.data;
  const state: JobState | "" = s.state || j?.state || "";
  const planned = s.plannedEpochs || j?.hyperparameters.epochs || 0;
  const rows = [...s.epochs.values()].sort((a, b) => a.epoch - b.epoch);
  const running = state === "queued" || state === "running";
  const modelVersion = s.modelVersion ?? j?.model_version ?? null;

  let done = 0;
  let progressText = "";
  if (state === "succeeded") {
    done = 1;
    progressText = "Done";
  } else if (s.progress && s.progress.phase === "preparing data") {
    const p = s.progress;
    progressText = `Preparing data: ${p.batch} of ${p.batches} samples read…`;
  } else if (s.progress) {
    const p = s.progress;
    const epochDone = Math.max(rows.length, p.epoch - 1 + p.batch / Math.max(1, p.batches));
    done = planned ? Math.min(1, epochDone / planned) : 0;
    // The job-level ETA covers every epoch left plus the export and the evaluation.
    progressText = `Training: epoch ${p.epoch} of ${p.epochs} · batch ${p.batch}/${p.batches} · ${Math.round(
      p.samples_per_second,
    )} samples/s · job ends in ${formatDuration(p.job_eta_seconds ?? p.eta_seconds)}`;
    if (running && (s.phase === "exporting" || s.phase === "evaluating")) {
      progressText =
        s.phase === "exporting"
          ? `Exporting the model files…${s.phaseEta ? ` (about ${formatDuration(s.phaseEta)})` : ""}`
          : "Evaluating every file on the evaluation set, next to the current version…";
    }
  } else if (running && s.phase) {
    progressText = `${s.phase[0]?.toUpperCase() ?? ""}${s.phase.slice(1)}…`;
  } else if (state === "queued") {
    progressText = "Waiting for a worker…";
  } else if (state === "running") {
    progressText = "Preparing data…";
  } else if (state) {
    done = planned ? rows.length / planned : 0;
    progressText = state;
  }

  const xMax = Math.max(planned, rows.length, 2);
  const lossSeries: Series[] = [
    { name: "train loss", color: TRAIN, points: rows.map((r) => [r.epoch, r.loss]) },
    { name: "validation loss", color: VAL, dashed: true, points: rows.map((r) => [r.epoch, r.val_loss]) },
  ];
  const accSeries: Series[] = [
    { name: "train accuracy", color: TRAIN, points: rows.map((r) => [r.epoch, r.accuracy]) },
    {
      name: "validation accuracy",
      color: VAL,
      dashed: true,
      points: rows.map((r) => [r.epoch, r.val_accuracy]),
    },
  ];

  const cancel = async () => {
    setCancelling(true);
    setCancelError("");
    try {
      await api.cancelJob(jobId);
    } catch (err) {
      setCancelError(describe(err));
      setCancelling(false);
    }
  };

  if (job.error) return <ErrorBox message={job.error} />;
  if (!j) return <Spinner />;

  return (
    <div class="job-view" data-testid="job-view">
      <Card
        title="Training job"
        actions={
          running ? (
            confirmCancel && !cancelling && !j.cancel_requested ? (
              <div class="row confirm" role="group" aria-label="Confirm cancelling the job">
                <span>Stop this job? Its progress is lost.</span>
                <button type="button" class="danger" onClick={() => void cancel()}>
                  Yes, cancel the job
                </button>
                <button type="button" onClick={() => setConfirmCancel(false)}>
                  Keep training
                </button>
              </div>
            ) : (
              <button
                type="button"
                class="danger-outline"
                onClick={() => setConfirmCancel(true)}
                disabled={cancelling || j.cancel_requested}
              >
                {cancelling || j.cancel_requested ? "Cancelling…" : "Cancel job"}
              </button>
            )
          ) : null
        }
      >
        <div class="job-meta">
          <span class={`badge state-${state}`} data-testid="job-state">
            {state}
          </span>
          <span class={`conn conn-${status}`} role="status" aria-live="polite">
            Events: {STATUS_TEXT[status]}
          </span>
          <span class="muted">
            started {formatTime(j.started_at ?? j.created_at)} · {j.hyperparameters.architecture} ·{" "}
            {planned} epochs · batch {j.hyperparameters.batch_size}
          </span>
        </div>
        {running && s.phase ? (
          <p class="muted" data-testid="job-phase">
            Phase: {s.phase}
          </p>
        ) : null}
        <ProgressBar label="Training progress" value={done} max={1} text={progressText} />
        <ErrorBox message={cancelError} />
        {state === "failed" ? <ErrorBox message={`The job failed: ${s.error || j.error}`} /> : null}
        {state === "succeeded" && modelVersion ? (
          <p class={s.release && !s.release.promoted ? "notice warning" : "notice"} data-testid="job-outcome">
            {s.release
              ? s.release.promoted
                ? `Model version ${modelVersion} passed the release gate and is now current: phones get it. `
                : `Model version ${modelVersion} is a candidate, not sent to phones: ${s.release.reason}. `
              : `Model version ${modelVersion} is ready. `}
            <Link href={projectUrl(project.name, `models/${modelVersion}`)}>See its evaluation</Link> or{" "}
            <Link href={projectUrl(project.name, "models")}>manage versions</Link>.
          </p>
        ) : null}
        {(s.release?.warnings ?? s.warnings).length ? (
          <ul class="warnings" aria-label="Warnings">
            {(s.release?.warnings ?? s.warnings).map((w) => (
              <li key={w} class="warning" data-testid="job-warning">
                ⚠ {w}
              </li>
            ))}
          </ul>
        ) : null}
      </Card>
      <div class="charts">
        <LineChart title="Loss" series={lossSeries} xMax={xMax} testId="loss-chart" yFormat={(v) => v.toFixed(2)} />
        <LineChart
          title="Accuracy"
          series={accSeries}
          xMax={xMax}
          yFixed={[0, 1]}
          testId="accuracy-chart"
          yFormat={(v) => `${Math.round(v * 100)}%`}
        />
      </div>
      <Card title="Epochs">
        <div class="scroll-x">
          <table class="data" data-testid="epoch-table">
            <caption class="visually-hidden">Metrics per epoch</caption>
            <thead>
              <tr>
                <th scope="col">Epoch</th>
                <th scope="col">Loss</th>
                <th scope="col">Accuracy</th>
                <th scope="col">Val. loss</th>
                <th scope="col">Val. accuracy</th>
                <th scope="col">Time</th>
              </tr>
            </thead>
            <tbody>
              {rows.length === 0 ? (
                <tr>
                  <td colSpan={6} class="muted">
                    No epoch has finished yet.
                  </td>
                </tr>
              ) : null}
              {rows.map((r) => (
                <tr key={r.epoch}>
                  <th scope="row">{r.epoch}</th>
                  <td>{num(r.loss)}</td>
                  <td>{pct(r.accuracy)}</td>
                  <td>{num(r.val_loss)}</td>
                  <td>{pct(r.val_accuracy)}</td>
                  <td>{r.seconds === null ? "–" : `${r.seconds.toFixed(1)} s`}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </Card>
      {s.evaluation ? (
        <Card title="Evaluation on the validation split" id="evaluation">
          <EvaluationView project={project} metrics={s.evaluation} />
        </Card>
      ) : null}
      {s.logs.length ? (
        <details class="card logs">
          <summary>Log ({s.logs.length} lines)</summary>
          <ol>
            {s.logs.map((l) => (
              <li key={l.seq}>
                <time dateTime={l.at}>{new Date(l.at).toLocaleTimeString()}</time> {l.message}
              </li>
            ))}
          </ol>
        </details>
      ) : null}
    </div>
  );
}
