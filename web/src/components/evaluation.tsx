import type { Metrics, Project } from "../api";
import { ConfusionMatrix, PerClassTable } from "./charts";
import { AuthImage, pct } from "./common";

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

export function Misclassified({ project, metrics }: { project: Project; metrics: Metrics }) {
  const items = metrics.misclassified;
  if (!items) return null;
  if (items.length === 0) {
    return <p class="muted">Every validation image was classified correctly.</p>;
  }
  return (
    <>
      <h3>Misclassified validation images ({items.length})</h3>
      <ul class="thumbs" data-testid="misclassified">
        {items.map((m) => (
          <li key={m.sample_id} class="miss">
            <AuthImage
              src={`/v1/projects/${encodeURIComponent(project.id)}/samples/${encodeURIComponent(m.sample_id)}/data`}
              alt={`Labelled ${m.label}, predicted ${m.predicted}`}
              size={88}
            />
            <span class="thumb-label">
              <span class="true-label">{m.label}</span> → <span class="pred-label">{m.predicted}</span>
              <span class="muted"> {pct(m.score, 0)}</span>
            </span>
          </li>
        ))}
      </ul>
    </>
  );
}

export function EvaluationView({ project, metrics }: { project: Project; metrics: Metrics }) {
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
