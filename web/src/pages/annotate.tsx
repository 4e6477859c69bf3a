// Labelling a detection project's images: one image at a time with its boxes, saved to the
// server (PUT .../samples/{id}/boxes) after every change. Keyboard: n / → next image, p / ←
// previous, 1–9 pick a label (and relabel the selected box), Delete removes the selected box,
// Escape deselects.

import { useCallback, useEffect, useRef, useState } from "preact/hooks";

import { api, describe, type Project, type Sample } from "../api";
import { BoxEditor, labelColour } from "../components/annotator";
import { Card, ErrorBox, Spinner, loadImage } from "../components/common";
import { MAX_BOXES, NO_BOXES, wireBox, type Box } from "../boxes";
import { Link, navigate, projectUrl } from "../router";

const PAGE_SIZE = 48;

/** The URL of the labelling view at one sample (the label filter of the dataset page kept). */
export function annotateUrl(project: string, sampleId: string, filter = ""): string {
  const q = filter ? `?label=${encodeURIComponent(filter)}` : "";
  return projectUrl(project, `annotate/${encodeURIComponent(sampleId)}`) + q;
}

function typing(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  return !!el && (el.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(el.tagName));
}

export function AnnotatePage({
  project,
  sampleId,
  onChange,
}: {
  project: Project;
  sampleId: string;
  onChange: () => void;
}) {
  const filter = new URLSearchParams(location.search).get("label") ?? "";
  const [list, setList] = useState<Sample[]>([]);
  const [next, setNext] = useState<string | null>(""); // null: no more pages
  const [index, setIndex] = useState(-1);
  const [loadError, setLoadError] = useState("");
  const [labels, setLabels] = useState<string[]>(project.labels);
  const [label, setLabel] = useState(project.labels[0] ?? "");
  const [newLabel, setNewLabel] = useState("");
  // The edited boxes and the sample they belong to (until the effect below catches up with a
  // new sample, its stored boxes are shown, never the previous image's).
  const [edited, setEdited] = useState<{ id: string; boxes: Box[] }>({ id: "", boxes: [] });
  const [selected, setSelected] = useState<number | null>(null);
  const [status, setStatus] = useState("");
  const [error, setError] = useState("");
  const [src, setSrc] = useState("");
  const saving = useRef<Promise<unknown>>(Promise.resolve());
  // Where the keyboard is: keys may come faster than renders, so stepping reads and writes
  // these synchronously (the state copies drive rendering).
  const pos = useRef(-1);
  const listRef = useRef<Sample[]>([]);
  const nextRef = useRef<string | null>("");
  const putList = (l: Sample[]) => {
    listRef.current = l;
    setList(l);
  };

  const sample = index >= 0 ? list[index] : undefined;
  const boxes = sample && edited.id === sample.id ? edited.boxes : (sample?.boxes ?? []);
  const setBoxes = (id: string, b: Box[]) => setEdited({ id, boxes: b });

  // The first page(s) of the dataset page's listing, until the requested sample is in it.
  useEffect(() => {
    let live = true;
    void (async () => {
      try {
        const all: Sample[] = [];
        let token: string | null = "";
        for (let i = 0; i < 20 && token !== null; i++) {
          const page = await api.listSamples(project.id, filter, PAGE_SIZE, token);
          all.push(...page.samples);
          token = page.next_page_token || null;
          if (!sampleId || all.some((s) => s.id === sampleId)) break;
        }
        let at = sampleId ? all.findIndex((s) => s.id === sampleId) : 0;
        if (at < 0) {
          // Not in the filtered listing (e.g. relabelled since): show it on its own first.
          all.unshift(await api.getSample(project.id, sampleId));
          at = 0;
        }
        if (!live) return;
        putList(all);
        nextRef.current = token;
        setNext(token);
        pos.current = all.length ? at : -1;
        setIndex(pos.current);
      } catch (err) {
        if (live) setLoadError(describe(err));
      }
    })();
    return () => {
      live = false;
    };
    // Only on entering the page: moving between images keeps the loaded list.
  }, [project.id]);

  // Labels the server learnt (an open set grows with new box labels) join the local list.
  useEffect(() => {
    setLabels((l) => [...l, ...project.labels.filter((x) => !l.includes(x))]);
  }, [project.labels.join("\n")]);

  // A new image: its boxes, its pixels, nothing selected.
  useEffect(() => {
    if (!sample) return;
    setBoxes(sample.id, sample.boxes ?? []);
    setSelected(null);
    setError("");
    setStatus(sample.boxes?.length ? "" : "No boxes yet: drag on the image to draw one.");
    let live = true;
    setSrc("");
    loadImage(sample.data_url).then(
      (u) => live && setSrc(u),
      (err) => live && setError(describe(err)),
    );
    return () => {
      live = false;
    };
  }, [sample?.id]);

  const save = useCallback(
    (target: Sample, next: Box[]) => {
      if (next.some((b) => !b.label)) {
        setError("Pick or type a label first.");
        return;
      }
      if (next.length > MAX_BOXES) {
        setError(`An image takes at most ${MAX_BOXES} boxes.`);
        return;
      }
      setBoxes(target.id, next);
      setError("");
      setStatus("Saving…");
      // One save at a time, in order: the last edit is the one the server keeps.
      saving.current = saving.current.then(async () => {
        try {
          const stored = await api.setBoxes(project.id, target.id, next.map(wireBox));
          putList(listRef.current.map((s) => (s.id === stored.id ? stored : s)));
          setStatus(`Saved ${next.length} box${next.length === 1 ? "" : "es"}.`);
          onChange();
        } catch (err) {
          setError(describe(err));
          setStatus("Not saved.");
          // Back to what the server has (if that image is still the one shown).
          setEdited((e) => (e.id === target.id ? { id: target.id, boxes: target.boxes ?? [] } : e));
        }
      });
    },
    [project.id, onChange],
  );

  const go = useCallback(
    async (step: number) => {
      const list = listRef.current;
      let to = pos.current + step;
      if (to < 0) return;
      if (to >= list.length) {
        const token = nextRef.current;
        if (token === null || token === "") return;
        nextRef.current = ""; // one page load at a time
        try {
          const page = await api.listSamples(project.id, filter, PAGE_SIZE, token);
          putList([...listRef.current, ...page.samples]);
          nextRef.current = page.next_page_token || null;
          setNext(nextRef.current);
          if (page.samples.length === 0) return;
          to = list.length;
        } catch (err) {
          nextRef.current = token;
          setError(describe(err));
          return;
        }
      }
      pos.current = to;
      setIndex(to);
      navigate(annotateUrl(project.name, (listRef.current[to] as Sample).id, filter), true);
    },
    [project.id, project.name, filter],
  );

  const pickLabel = useCallback(
    (l: string) => {
      setLabel(l);
      if (sample && selected !== null && boxes[selected] && boxes[selected]?.label !== l) {
        save(sample, boxes.map((b, i) => (i === selected ? { ...b, label: l } : b)));
      }
    },
    [sample, selected, boxes, save],
  );

  const remove = useCallback(
    (i: number) => {
      if (!sample) return;
      save(sample, boxes.filter((_, j) => j !== i));
      setSelected(null);
    },
    [sample, boxes, save],
  );

  // One listener for the page's life; it calls what the latest render made.
  const keys = useRef({ go, remove, pickLabel, selected, labels });
  keys.current = { go, remove, pickLabel, selected, labels };
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
      const k = keys.current;
      if (e.key === "n" || e.key === "ArrowRight") void k.go(1);
      else if (e.key === "p" || e.key === "ArrowLeft") void k.go(-1);
      else if ((e.key === "Delete" || e.key === "Backspace") && k.selected !== null) k.remove(k.selected);
      else if (e.key === "Escape") setSelected(null);
      else if (/^[1-9]$/.test(e.key) && k.labels[Number(e.key) - 1] !== undefined) k.pickLabel(k.labels[Number(e.key) - 1] as string);
      else return;
      e.preventDefault();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  const addLabel = (e: Event) => {
    e.preventDefault();
    const l = newLabel.trim();
    if (!l) return;
    if (l === NO_BOXES) {
      setError(`“${NO_BOXES}” is reserved for images without boxes.`);
      return;
    }
    if (!labels.includes(l)) setLabels([...labels, l]);
    setNewLabel("");
    pickLabel(l);
  };

  if (loadError) return <ErrorBox message={loadError} />;
  if (index < 0 && list.length === 0 && next !== "") {
    return (
      <Card title="Label boxes">
        <p class="muted">No images{filter ? ` labelled “${filter}”` : ""} to label.</p>
      </Card>
    );
  }
  if (!sample) return <Spinner />;

  return (
    <div class="annotate">
      <Card
        title={`Image ${index + 1} of ${list.length}${next !== null ? "+" : ""}`}
        actions={
          <Link href={projectUrl(project.name, "dataset")} class="button">
            Back to the dataset
          </Link>
        }
      >
        <div class="row annotate-nav">
          <button type="button" onClick={() => void go(-1)} disabled={index === 0} aria-keyshortcuts="p ArrowLeft">
            ← Previous (p)
          </button>
          <span class="muted" data-testid="annotate-sample">
            {sample.client_id.startsWith("sha256:") ? sample.id.slice(0, 8) : sample.client_id} · {sample.width}×
            {sample.height} px
          </span>
          <button
            type="button"
            onClick={() => void go(1)}
            disabled={index >= list.length - 1 && next === null}
            aria-keyshortcuts="n ArrowRight"
          >
            Next (n) →
          </button>
        </div>
        {src ? (
          <BoxEditor
            src={src}
            width={sample.width}
            height={sample.height}
            boxes={boxes}
            labels={labels}
            label={label}
            selected={selected}
            onSelect={setSelected}
            onCommit={(b) => save(sample, b)}
          />
        ) : (
          <Spinner label="Loading the image…" />
        )}
        <p class="muted" role="status" data-testid="save-status">
          {status}
        </p>
        <ErrorBox message={error} />
      </Card>
      <Card title="Boxes">
        <div class="field">
          <label for="box-label">Label for new boxes</label>
          <select id="box-label" value={label} onChange={(e) => pickLabel((e.target as HTMLSelectElement).value)}>
            {label === "" ? <option value="">(type a new label)</option> : null}
            {labels.map((l, i) => (
              <option key={l} value={l}>
                {i < 9 ? `${i + 1}: ` : ""}
                {l}
              </option>
            ))}
          </select>
        </div>
        {project.labels_fixed ? null : (
          <form class="row" onSubmit={addLabel} aria-label="New label">
            <label for="new-box-label" class="visually-hidden">
              New label
            </label>
            <input
              id="new-box-label"
              value={newLabel}
              placeholder="New label"
              onInput={(e) => setNewLabel((e.target as HTMLInputElement).value)}
            />
            <button type="submit" disabled={!newLabel.trim()}>
              Add label
            </button>
          </form>
        )}
        {boxes.length === 0 ? (
          <p class="notice" data-testid="no-boxes-here">
            No boxes: this image counts as a background image (nothing to detect).
          </p>
        ) : (
          <ol class="box-list" aria-label="Boxes on this image">
            {boxes.map((b, i) => (
              <li key={i} class={i === selected ? "selected" : ""}>
                <button type="button" class="link" onClick={() => setSelected(i)} aria-pressed={i === selected}>
                  <span class="swatch" style={{ background: labelColour(b.label, labels) }} aria-hidden="true" />
                  Box {i + 1}
                </button>
                <select
                  aria-label={`Label of box ${i + 1}`}
                  value={b.label}
                  onChange={(e) =>
                    save(sample, boxes.map((x, j) => (j === i ? { ...x, label: (e.target as HTMLSelectElement).value } : x)))
                  }
                >
                  {(labels.includes(b.label) ? labels : [b.label, ...labels]).map((l) => (
                    <option key={l} value={l}>
                      {l}
                    </option>
                  ))}
                </select>
                <span class="muted">
                  {Math.round((b.x_max - b.x_min) * sample.width)}×{Math.round((b.y_max - b.y_min) * sample.height)} px
                </span>
                <button type="button" class="danger-outline" onClick={() => remove(i)} aria-label={`Delete box ${i + 1}`}>
                  Delete
                </button>
              </li>
            ))}
          </ol>
        )}
        <details class="hint">
          <summary>Keyboard</summary>
          <p>
            Drag on the image to draw a box; drag a box to move it, its handles to resize it.{" "}
            <kbd>n</kbd>/<kbd>→</kbd> next image, <kbd>p</kbd>/<kbd>←</kbd> previous, <kbd>1</kbd>–<kbd>9</kbd> pick a
            label (and relabel the selected box), <kbd>Delete</kbd> removes the selected box, <kbd>Esc</kbd> deselects.
            Every change is saved at once.
          </p>
        </details>
      </Card>
    </div>
  );
}
