import { useState } from "preact/hooks";

import { api, describe, type Metrics, type Project, type Sample } from "../api";
import { ConfusionMatrix, PerClassTable } from "./charts";
import { DetectionEvaluation, isDetectionMetrics } from "./detection";
import { ErrorBox, pct } from "./common";
import { SampleThumb, mediaTypeOfTask } from "./samplepreview";
import { SampleDialog } from "./sampledialog";

export function AccuracySummary({ metrics }: { metrics: Metrics }) {
  const tflite = Object.entries(metrics.tflite ?? {});
  return (
    <dl class="stats">
      <div>
        <dt>Keras accuracy</dt>
        <dd data-testid="keras-accuracy">{pct(metrics.accuracy)}</dd>
      </div>
      {tflite.map(([fmt, m]) => (
        <div key={fmt}>
          <dt>{fmt} (LiteRT)</dt>
          <dd>{pct(m.accuracy)}</dd>
        </div>
      ))}
      {metrics.macro_f1 !== undefined ? (
        <div>
          <dt>Macro F1</dt>
          <dd>{pct(metrics.macro_f1)}</dd>
        </div>
      ) : null}
      {metrics.num_validation !== undefined ? (
        <div>
          <dt>Validation images</dt>
          <dd>{metrics.num_validation}</dd>
        </div>
      ) : null}
    </dl>
  );
}

/** The misclassified validation images; each opens the sample to fix its label or delete it. */
export function Misclassified({ project, metrics }: { project: Project; metrics: Metrics }) {
  const items = metrics.misclassified;
  const [open, setOpen] = useState<Sample | null>(null);
  const [opening, setOpening] = useState("");
  const [error, setError] = useState("");
  // What was done here since the metrics were computed: sample id → new label ("" = deleted).
  const [changed, setChanged] = useState<Record<string, string>>({});
  if (!items) return null;
  if (items.length === 0) {
    return <p class="muted">Every validation image was classified correctly.</p>;
  }
  const show = async (sampleId: string) => {
    setOpening(sampleId);
    setError("");
    try {
      setOpen(await api.getSample(project.id, sampleId));
    } catch (err) {
      setError(describe(err));
    } finally {
      setOpening("");
    }
  };
  const fixed = Object.keys(changed).length;
  return (
    <>
      <h3>Misclassified validation samples ({items.length})</h3>
      <p class="hint">
        Open a sample to fix a wrong label or delete a bad one; train again to see the effect.
      </p>
      <ErrorBox message={error} />
      <ul class="thumbs" data-testid="misclassified">
        {items.map((m) => {
          const now = changed[m.sample_id];
          return (
            <li key={m.sample_id} class="miss">
              <button
                type="button"
                class="thumb-button"
                disabled={now === "" || opening === m.sample_id}
                onClick={() => void show(m.sample_id)}
                aria-label={`Misclassified: labelled ${m.label}, predicted ${m.predicted}: open`}
              >
                <SampleThumb
                  src={`/v1/projects/${encodeURIComponent(project.id)}/samples/${encodeURIComponent(m.sample_id)}/data`}
                  mediaType={mediaTypeOfTask(project.task)}
                  size={88}
                />
                <span class="thumb-label">
                  <span class="true-label">{m.label}</span> → <span class="pred-label">{m.predicted}</span>
                  <span class="muted"> {pct(m.score, 0)}</span>
                </span>
                {now !== undefined ? (
                  <span class="thumb-label fixed" data-testid="misclassified-change">
                    {now === "" ? "deleted" : `now “${now}”`}
                  </span>
                ) : null}
              </button>
            </li>
          );
        })}
      </ul>
      {fixed ? (
        <p class="notice" role="status">
          {fixed} image{fixed === 1 ? "" : "s"} changed since this evaluation: train again to measure
          the effect.
        </p>
      ) : null}
      {open ? (
        <SampleDialog
          key={open.id}
          project={project}
          sample={open}
          onClose={() => setOpen(null)}
          onChanged={(label) => setChanged((c) => ({ ...c, [open.id]: label }))}
        />
      ) : null}
    </>
  );
}

export function EvaluationView({ project, metrics }: { project: Project; metrics: Metrics }) {
  if (isDetectionMetrics(metrics)) return <DetectionEvaluation project={project} metrics={metrics} />;
  const labels = metrics.labels ?? metrics.per_class?.map((c) => c.label) ?? [];
  return (
    <div class="evaluation">
      <AccuracySummary metrics={metrics} />
      {metrics.confusion_matrix ? <ConfusionMatrix labels={labels} matrix={metrics.confusion_matrix} /> : null}
      {metrics.per_class ? <PerClassTable rows={metrics.per_class} /> : null}
      <Misclassified project={project} metrics={metrics} />
    </div>
  );
}
