// The evaluation of an object detector: mAP@0.5 and COCO mAP@[.5:.95] for the Keras model and
// each exported file (measured in LiteRT), average precision per class, and validation images
// with their ground truth beside what the exported model found.

import { useEffect, useState } from "preact/hooks";

import { type DetectionExample, type DetectionMetrics, type DetectionReport, type Metrics, type Project } from "../api";
import { BoxOverlay, labelColour } from "./annotator";
import { loadImage, pct } from "./common";

export const isDetectionMetrics = (m: Metrics | DetectionMetrics): m is DetectionMetrics =>
  (m as { task?: string }).task === "object-detection";

const EMPTY: DetectionReport = { map50: null, map50_95: null };

function Summary({ metrics }: { metrics: DetectionMetrics }) {
  const keras = metrics.detection ?? EMPTY;
  const files = Object.entries(metrics.detection?.tflite ?? {});
  return (
    <dl class="stats">
      <div>
        <dt>mAP@0.5 (Keras)</dt>
        <dd data-testid="map-50">{pct(keras.map50)}</dd>
      </div>
      <div>
        <dt>mAP@[.5:.95] (Keras)</dt>
        <dd data-testid="map-50-95">{pct(keras.map50_95)}</dd>
      </div>
      {files.map(([fmt, m]) => (
        <div key={fmt}>
          <dt>{fmt} mAP@0.5 (LiteRT)</dt>
          <dd data-testid={`map-50-${fmt}`}>
            {pct(m.map50)} <span class="muted">· [.5:.95] {pct(m.map50_95)}</span>
          </dd>
        </div>
      ))}
      {metrics.num_validation !== undefined ? (
        <div>
          <dt>Validation images</dt>
          <dd>
            {metrics.num_validation}
            {metrics.num_validation_boxes !== undefined ? ` (${metrics.num_validation_boxes} boxes)` : ""}
          </dd>
        </div>
      ) : null}
    </dl>
  );
}

/** AP per class: the Keras model's, then each exported file's AP@0.5 as measured in LiteRT. */
function PerClassAp({ metrics }: { metrics: DetectionMetrics }) {
  const rows = metrics.detection?.per_class ?? [];
  const files = Object.entries(metrics.detection?.tflite ?? {});
  const fileAp = (report: DetectionReport, label: string) =>
    report.per_class?.find((c) => c.label === label)?.ap50 ?? null;
  if (rows.length === 0) return <p class="muted">No per-class results (no validation boxes).</p>;
  return (
    <div class="scroll-x">
      <table class="per-class" data-testid="per-class-ap">
        <caption>Average precision per class (validation split)</caption>
        <thead>
          <tr>
            <th scope="col">Label</th>
            <th scope="col">AP@0.5</th>
            <th scope="col">AP@[.5:.95]</th>
            {files.map(([fmt]) => (
              <th scope="col" key={fmt}>
                {fmt} AP@0.5
              </th>
            ))}
            <th scope="col">Boxes</th>
            <th scope="col">Detections</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((c) => (
            <tr key={c.label}>
              <th scope="row">{c.label}</th>
              <td>{pct(c.ap50)}</td>
              <td>{pct(c.ap50_95)}</td>
              {files.map(([fmt, report]) => (
                <td key={fmt}>{pct(fileAp(report, c.label))}</td>
              ))}
              <td>{c.num_gt ?? "–"}</td>
              <td>{c.num_detections ?? "–"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows.some((c) => c.ap50 === null) ? (
        <p class="hint">“–”: no boxes of that class in the validation split, so no AP.</p>
      ) : null}
    </div>
  );
}

/** A sample image with boxes drawn over it, at the image's own aspect ratio. */
function BoxedImage({
  project,
  sampleId,
  boxes,
  labels,
  testId,
}: {
  project: Project;
  sampleId: string;
  boxes: DetectionExample["ground_truth"] | DetectionExample["detections"];
  labels: string[];
  testId: string;
}) {
  const [url, setUrl] = useState("");
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    let live = true;
    loadImage(`/v1/projects/${encodeURIComponent(project.id)}/samples/${encodeURIComponent(sampleId)}/data`).then(
      (u) => live && setUrl(u),
      () => live && setFailed(true),
    );
    return () => {
      live = false;
    };
  }, [project.id, sampleId]);
  if (failed) return <p class="muted">Image deleted since.</p>;
  return (
    <span class="det-figure">
      {url ? <img src={url} alt="" /> : <span class="thumb thumb-loading" style={{ width: 120, height: 90 }} />}
      <BoxOverlay width={1} height={1} boxes={boxes} labels={labels} testId={testId} />
    </span>
  );
}

function Examples({ project, metrics }: { project: Project; metrics: DetectionMetrics }) {
  const items = metrics.detection_examples ?? [];
  const labels = metrics.labels ?? (metrics.detection?.per_class ?? []).map((c) => c.label);
  if (items.length === 0) return null;
  return (
    <>
      <h3>Example detections</h3>
      <p class="hint">
        Validation images: ground truth on the left, what the {metrics.detection_examples_source ?? "exported"} model found on
        the right (with its scores).
      </p>
      <ul class="det-examples" data-testid="detection-examples">
        {items.map((ex) => (
          <li key={ex.sample_id} class="det-pair">
            <figure>
              <BoxedImage project={project} sampleId={ex.sample_id} boxes={ex.ground_truth ?? []} labels={labels} testId="truth-boxes" />
              <figcaption>
                Ground truth: {(ex.ground_truth ?? []).length} box{(ex.ground_truth ?? []).length === 1 ? "" : "es"}
              </figcaption>
            </figure>
            <figure>
              <BoxedImage project={project} sampleId={ex.sample_id} boxes={ex.detections ?? []} labels={labels} testId="found-boxes" />
              <figcaption>
                {(ex.detections ?? []).length === 0
                  ? "Nothing found"
                  : ex.detections.map((d, i) => (
                      <span key={i} class="det-score">
                        <span class="swatch" style={{ background: labelColour(d.label, labels) }} aria-hidden="true" />
                        {d.label} {pct(d.score, 0)}{" "}
                      </span>
                    ))}
              </figcaption>
            </figure>
          </li>
        ))}
      </ul>
    </>
  );
}

export function DetectionEvaluation({ project, metrics }: { project: Project; metrics: DetectionMetrics }) {
  return (
    <div class="evaluation">
      <Summary metrics={metrics} />
      <PerClassAp metrics={metrics} />
      <Examples project={project} metrics={metrics} />
    </div>
  );
}
