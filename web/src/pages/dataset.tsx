import { useEffect, useRef, useState } from "preact/hooks";

import { DETECTION, api, describe, type Project, type Sample } from "../api";
import { BoxOverlay } from "../components/annotator";
import { ClassBars } from "../components/charts";
import {
  Card,
  ErrorBox,
  ProgressBar,
  Spinner,
  loadImage,
  useLoad,
} from "../components/common";
import { NO_BOXES } from "../boxes";
import { annotateUrl } from "./annotate";
import { SampleDialog } from "../components/sampledialog";
import { AudioPlayer, SampleThumb, isAudio } from "../components/samplepreview";
import { Webcam } from "../components/webcam";
import { navigate } from "../router";
import { fileKind, filesFromDrop, filesFromInput, uploadFiles, type PickedFile, type UploadTotals } from "../upload";

const PAGE_SIZE = 48;

/** A detection image's thumbnail with its boxes drawn on it, fitted into `size` × `size`. */
export function DetectionThumb({ sample, labels, size }: { sample: Sample; labels: string[]; size: number }) {
  const [url, setUrl] = useState("");
  useEffect(() => {
    let live = true;
    loadImage(sample.data_url).then(
      (u) => live && setUrl(u),
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, [sample.data_url]);
  const w = Math.max(1, sample.width);
  const h = Math.max(1, sample.height);
  const fit = w >= h ? { width: size, height: (size * h) / w } : { width: (size * w) / h, height: size };
  return (
    <span class="det-thumb thumb" style={{ width: size, height: size }}>
      <span class="det-thumb-fit" style={{ width: fit.width, height: fit.height }}>
        {url ? <img src={url} alt="" width={fit.width} height={fit.height} /> : null}
        <BoxOverlay width={w} height={h} boxes={sample.boxes ?? []} labels={labels} testId="thumb-boxes" />
      </span>
    </span>
  );
}

/** Boxes per label and the images without any (detection projects). */
function BoxCounts({ perLabel, none }: { perLabel: Record<string, number>; none: number }) {
  const total = Object.values(perLabel).reduce((a, b) => a + b, 0);
  return (
    <>
      <h3>Boxes</h3>
      <p>
        <strong data-testid="total-boxes">{total}</strong> boxes in {Object.keys(perLabel).length} labels
      </p>
      {Object.keys(perLabel).length ? (
        <ul class="bars" aria-label="Boxes per label" data-testid="box-bars">
          {Object.entries(perLabel).map(([label, n]) => (
            <li key={label}>
              <span class="bar-label">{label}</span>
              <span class="bar-track" aria-hidden="true">
                <span class="bar-fill" style={{ width: `${(n / Math.max(1, ...Object.values(perLabel))) * 100}%` }} />
              </span>
              <span class="bar-count">{n}</span>
            </li>
          ))}
        </ul>
      ) : null}
      <p class={none ? "notice" : "muted"} data-testid="images-without-boxes">
        {none === 0 ? "Every image has boxes." : `${none} image${none === 1 ? "" : "s"} without boxes (flagged below).`}
      </p>
    </>
  );
}

function Imbalance({ counts }: { counts: Record<string, number> }) {
  const entries = Object.entries(counts);
  if (entries.length < 2) return null;
  const sorted = [...entries].sort((a, b) => b[1] - a[1]);
  const [maxLabel, max] = sorted[0] as [string, number];
  const [minLabel, min] = sorted[sorted.length - 1] as [string, number];
  const ratio = min > 0 ? max / min : Infinity;
  const text =
    min === 0
      ? `“${minLabel}” has no samples yet.`
      : ratio >= 2
        ? `Imbalanced: “${maxLabel}” has ${ratio.toFixed(1)}× the samples of “${minLabel}”.`
        : `Balanced: the largest class has ${ratio.toFixed(1)}× the smallest.`;
  return <p class={ratio >= 2 ? "notice" : "muted"}>{text}</p>;
}

function Uploader({
  project,
  onUploaded,
}: {
  project: Project;
  onUploaded: () => void;
}) {
  const [label, setLabel] = useState(project.labels[0] ?? "");
  const [progress, setProgress] = useState<UploadTotals | null>(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const [dragging, setDragging] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);
  const folderInput = useRef<HTMLInputElement>(null);
  const kind = fileKind(project.task);
  const isImages = kind.accept.startsWith("image/");
  // Detection: the server labels an image by its boxes; images come in without boxes.
  const isDetection = project.task === DETECTION;

  useEffect(() => {
    // webkitdirectory is not in Preact's attribute types; set it on the element.
    folderInput.current?.setAttribute("webkitdirectory", "");
  }, []);

  const run = async (files: PickedFile[]) => {
    setError("");
    if (files.length === 0) {
      setError(`No ${kind.noun} found there.`);
      return;
    }
    const loose = files.some((f) => f.folder === null);
    if (loose && !label.trim() && !isDetection) {
      setError("Choose a label for the files that are not in a folder.");
      return;
    }
    setBusy(true);
    // Upload order sets the order of new labels: keep it natural (2 before 10).
    const sorted = [...files].sort((a, b) => a.path.localeCompare(b.path, undefined, { numeric: true }));
    try {
      // Detection: no labels at all (a folder name is no box label).
      const picked = isDetection ? sorted.map((f) => ({ ...f, folder: null })) : sorted;
      await uploadFiles(project.id, picked, isDetection ? "" : label.trim(), setProgress);
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
      onUploaded();
    }
  };

  const onDrop = async (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    if (!e.dataTransfer || busy) return;
    await run(await filesFromDrop(e.dataTransfer, project.task));
  };

  const onCapture = async (frame: Blob) => {
    if (!label.trim() && !isDetection) {
      setError("Choose a label before capturing.");
      return;
    }
    const name = `webcam-${new Date().toISOString().replace(/[:.]/g, "-")}.${frame.type === "image/png" ? "png" : "jpg"}`;
    await run([{ file: new File([frame], name, { type: frame.type }), path: name, folder: null }]);
  };

  const fixed = project.labels_fixed;
  return (
    <>
      {isDetection ? (
        <p class="hint">Images come in without boxes; draw them with “Label boxes”.</p>
      ) : (
      <div class="field">
        <label for="upload-label">{isImages ? "Label for loose files and webcam frames" : "Label for loose files"}</label>
        {fixed ? (
          <select id="upload-label" value={label} onChange={(e) => setLabel((e.target as HTMLSelectElement).value)}>
            {project.labels.map((l) => (
              <option key={l} value={l}>
                {l}
              </option>
            ))}
          </select>
        ) : (
          <>
            <input
              id="upload-label"
              list="known-labels"
              value={label}
              onInput={(e) => setLabel((e.target as HTMLInputElement).value)}
              placeholder="e.g. rose"
            />
            <datalist id="known-labels">
              {project.labels.map((l) => (
                <option key={l} value={l} />
              ))}
            </datalist>
          </>
        )}
      </div>
      )}
      <div
        class={`dropzone${dragging ? " dragging" : ""}`}
        role="button"
        tabIndex={0}
        aria-label={`Drop ${isImages ? "images" : kind.noun} or folders here, or press Enter to choose files`}
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(e) => void onDrop(e)}
        onClick={() => fileInput.current?.click()}
        onKeyDown={(e) => {
          if (e.key === "Enter" || e.key === " ") {
            e.preventDefault();
            fileInput.current?.click();
          }
        }}
      >
        <strong>Drop {isImages ? "images" : kind.noun} or whole folders here</strong>
        <span class="muted">
          {isDetection ? "Boxes are drawn here after the upload." : "A folder’s name is the label of the files in it."}
        </span>
      </div>
      <div class="row">
        <label class="button" for="file-input">
          {isImages ? "Choose images…" : "Choose files…"}
        </label>
        <input
          ref={fileInput}
          id="file-input"
          class="visually-hidden"
          type="file"
          accept={kind.accept}
          multiple
          disabled={busy}
          onChange={(e) => {
            const input = e.target as HTMLInputElement;
            void run(filesFromInput(input.files, project.task)).then(() => (input.value = ""));
          }}
        />
        <label class="button" for="folder-input">
          Choose a folder…
        </label>
        <input
          ref={folderInput}
          id="folder-input"
          class="visually-hidden"
          type="file"
          multiple
          disabled={busy}
          onChange={(e) => {
            const input = e.target as HTMLInputElement;
            void run(filesFromInput(input.files, project.task)).then(() => (input.value = ""));
          }}
        />
      </div>
      {isImages ? (
        <details class="webcam-box">
          <summary>Capture from the webcam</summary>
          <Webcam
            width={project.input_spec.width}
            height={project.input_spec.height}
            onCapture={(b) => void onCapture(b)}
            captureText={isDetection ? "Capture" : `Capture as “${label || "…"}”`}
            busy={busy}
          />
        </details>
      ) : null}
      <ErrorBox message={error} />
      {progress ? (
        <div class="upload-status" aria-live="polite">
          <ProgressBar
            label="Upload progress"
            value={progress.done}
            max={progress.total}
            text={`${progress.done} of ${progress.total} files · ${progress.accepted} added · ${progress.duplicate} already there · ${progress.rejected} rejected`}
          />
          {progress.rejections.length ? (
            <details>
              <summary>{progress.rejections.length} rejected files</summary>
              <ul class="rejections">
                {progress.rejections.slice(0, 200).map((r, i) => (
                  <li key={i}>
                    <code>{r.path}</code>: {r.reason}
                  </li>
                ))}
              </ul>
            </details>
          ) : null}
        </div>
      ) : null}
    </>
  );
}

/** Delete the whole project: typing its name confirms (nothing can bring it back). */
function DeleteProject({ project }: { project: Project }) {
  const [typed, setTyped] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const remove = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      await api.deleteProject(project.id);
      navigate("/");
    } catch (err) {
      setError(describe(err));
      setBusy(false);
    }
  };
  return (
    <details class="danger-zone">
      <summary>Delete this project…</summary>
      <form onSubmit={(e) => void remove(e)} aria-label="Delete the project">
        <p>
          Deletes the project with every sample, job, model version, release record and device
          token. It cannot be undone; a project with a queued or running job cannot be deleted.
        </p>
        <div class="field">
          <label for="delete-confirm">Type “{project.name}” to confirm</label>
          <input
            id="delete-confirm"
            autoComplete="off"
            value={typed}
            onInput={(e) => setTyped((e.target as HTMLInputElement).value)}
          />
        </div>
        <ErrorBox message={error} />
        <button type="submit" class="danger" disabled={busy || typed !== project.name}>
          {busy ? "Deleting…" : "Delete project"}
        </button>
      </form>
    </details>
  );
}

export function DatasetPage({ project, onChange }: { project: Project; onChange: () => void }) {
  const [filter, setFilter] = useState("");
  const [pages, setPages] = useState<string[]>([""]);
  const [pageIndex, setPageIndex] = useState(0);
  const [version, setVersion] = useState(0);
  const [selected, setSelected] = useState<Sample | null>(null);

  const counts = useLoad(() => api.classCounts(project.id), [project.id, version]);
  const token = pages[pageIndex] ?? "";
  const samples = useLoad(
    () => api.listSamples(project.id, filter, PAGE_SIZE, token),
    [project.id, filter, token, version],
  );

  const changed = () => {
    setVersion((v) => v + 1);
    onChange();
  };
  const choose = (label: string) => {
    setFilter(label);
    setPages([""]);
    setPageIndex(0);
  };
  const isDetection = project.task === DETECTION;
  const next = samples.data?.next_page_token ?? "";
  // The total comes from the class counts (the sample listing pages by token, without a count).
  const matching = counts.data ? (filter ? (counts.data.counts[filter] ?? 0) : counts.data.total) : null;

  return (
    <div class="grid-2">
      <Card title="Classes">
        <ErrorBox message={counts.error} />
        {counts.data ? (
          <>
            <p>
              <strong data-testid="total-samples">{counts.data.total}</strong> samples in{" "}
              {Object.keys(counts.data.counts).length} labels
            </p>
            <ClassBars counts={counts.data.counts} selected={filter} onSelect={choose} />
            {/* Detection: balance is about boxes (below), not about the images' derived labels. */}
            {isDetection ? null : <Imbalance counts={counts.data.counts} />}
            {isDetection ? (
              <p class="hint">
                An image’s label is its most frequent box label; “{NO_BOXES}” marks images without boxes.
              </p>
            ) : null}
          </>
        ) : (
          <Spinner />
        )}
        {isDetection && counts.data ? (
          <BoxCounts perLabel={counts.data.box_counts ?? {}} none={counts.data.images_without_boxes ?? 0} />
        ) : null}
      </Card>
      <Card title={project.task !== "audio-classification" && project.task !== "sensor-classification" ? "Add images" : "Add samples"}>
        <Uploader project={project} onUploaded={changed} />
      </Card>
      <Card
        title="Samples"
        id="samples"
        actions={
          <div class="row">
          {isDetection && samples.data?.samples.length ? (
            <button
              type="button"
              class="primary"
              onClick={() => navigate(annotateUrl(project.name, (samples.data?.samples[0] as Sample).id, filter))}
            >
              Label boxes
            </button>
          ) : null}
          <div class="field inline">
            <label for="label-filter">Label</label>
            <select id="label-filter" value={filter} onChange={(e) => choose((e.target as HTMLSelectElement).value)}>
              <option value="">All labels</option>
              {Object.keys(counts.data?.counts ?? {}).map((l) => (
                <option key={l} value={l}>
                  {l}
                </option>
              ))}
            </select>
          </div>
          </div>
        }
      >
        <ErrorBox message={samples.error} />
        {samples.data && samples.data.samples.length === 0 ? (
          <p class="muted">No samples{filter ? ` labelled “${filter}”` : ""}.</p>
        ) : null}
        <ul class="thumbs" aria-label="Samples" aria-busy={samples.loading}>
          {(samples.data?.samples ?? []).map((s) =>
            isDetection ? (
              <li key={s.id}>
                <button
                  type="button"
                  class="thumb-button"
                  onClick={() => navigate(annotateUrl(project.name, s.id, filter))}
                  aria-label={`Image with ${s.boxes?.length ?? 0} boxes: label boxes`}
                >
                  <DetectionThumb sample={s} labels={project.labels} size={88} />
                  {s.boxes?.length ? (
                    <span class="thumb-label" data-testid="box-count">
                      {s.boxes.length} box{s.boxes.length === 1 ? "" : "es"}
                    </span>
                  ) : (
                    <span class="thumb-label no-boxes" data-testid="no-boxes">
                      no boxes
                    </span>
                  )}
                </button>
              </li>
            ) : (
            <li key={s.id}>
              <button type="button" class="thumb-button" onClick={() => setSelected(s)} aria-label={`Sample labelled ${s.label}: edit`}>
                <SampleThumb src={s.data_url} mediaType={s.media_type} size={88} />
                <span class="thumb-label">{s.label}</span>
              </button>
              {/* A player outside the button: controls inside a button would not be clickable. */}
              {isAudio(s) ? <AudioPlayer sample={s} /> : null}
            </li>
            ),
          )}
        </ul>
        <nav class="pager" aria-label="Sample pages">
          <button type="button" disabled={pageIndex === 0} onClick={() => setPageIndex(pageIndex - 1)}>
            ← Previous
          </button>
          <span data-testid="page-status">
            Page {pageIndex + 1}
            {matching !== null
              ? ` of ${Math.max(1, Math.ceil(matching / PAGE_SIZE))} · ${matching} sample${matching === 1 ? "" : "s"}`
              : ""}
          </span>
          <button
            type="button"
            disabled={!next}
            onClick={() => {
              setPages([...pages.slice(0, pageIndex + 1), next]);
              setPageIndex(pageIndex + 1);
            }}
          >
            Next →
          </button>
        </nav>
      </Card>
      <Card title="Project">
        <DeleteProject project={project} />
      </Card>
      {selected ? (
        <SampleDialog
          key={selected.id}
          project={project}
          sample={selected}
          onClose={() => setSelected(null)}
          onChanged={changed}
        />
      ) : null}
    </div>
  );
}
