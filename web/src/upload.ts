// Collect sample files (images, WAV or sensor CSV/JSON, by the project's task) from drops and
// pickers (folder name = label) and upload them in batches.

import { api, type SampleResult } from "./api";

export interface PickedFile {
  file: File;
  /** Path shown to people (folder/name). */
  path: string;
  /** The folder the file was in (its label), or null for loose files. */
  folder: string | null;
}

/** What files each task takes: name pattern, media-type test, `accept` for pickers, words for people. */
export interface FileKind {
  ext: RegExp;
  type: (t: string) => boolean;
  accept: string;
  noun: string;
}

const IMAGE_KIND: FileKind = {
  ext: /\.(jpe?g|png|webp)$/i,
  type: (t) => t.startsWith("image/"),
  accept: "image/jpeg,image/png,image/webp",
  noun: "JPEG, PNG or WebP images",
};

const KINDS: Record<string, FileKind> = {
  "image-classification": IMAGE_KIND,
  "audio-classification": {
    ext: /\.wav$/i,
    type: (t) => t === "audio/wav" || t === "audio/x-wav" || t === "audio/wave",
    accept: ".wav,audio/wav",
    noun: "WAV recordings",
  },
  "sensor-classification": {
    ext: /\.(csv|json)$/i,
    type: (t) => t === "text/csv" || t === "application/json",
    accept: ".csv,.json,text/csv,application/json",
    noun: "CSV or JSON sensor recordings",
  },
};

/** The file kind of a task (unknown tasks: images, the server's original kind). */
export function fileKind(task: string): FileKind {
  return KINDS[task] ?? IMAGE_KIND;
}

/** Whether a file is one the project's task takes (hidden files never are). */
export function accepts(file: File, task: string): boolean {
  const kind = fileKind(task);
  return !file.name.startsWith(".") && (kind.ext.test(file.name) || kind.type(file.type));
}

function folderOf(path: string): string | null {
  const parts = path.split("/").filter(Boolean);
  return parts.length >= 2 ? (parts[parts.length - 2] ?? null) : null;
}

/** Files from an <input type=file> (with or without `webkitdirectory`). */
export function filesFromInput(list: FileList | null, task: string): PickedFile[] {
  const out: PickedFile[] = [];
  for (const file of Array.from(list ?? [])) {
    if (!accepts(file, task)) continue;
    const rel = file.webkitRelativePath || file.name;
    out.push({ file, path: rel, folder: file.webkitRelativePath ? folderOf(rel) : null });
  }
  return out;
}

function readAll(reader: FileSystemDirectoryReader): Promise<FileSystemEntry[]> {
  return new Promise((resolve, reject) => {
    const all: FileSystemEntry[] = [];
    const next = () =>
      reader.readEntries((batch) => {
        if (batch.length === 0) resolve(all);
        else {
          all.push(...batch);
          next();
        }
      }, reject);
    next();
  });
}

async function walk(entry: FileSystemEntry, out: PickedFile[], task: string): Promise<void> {
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) =>
      (entry as FileSystemFileEntry).file(resolve, reject),
    );
    if (accepts(file, task)) out.push({ file, path: entry.fullPath.replace(/^\//, ""), folder: folderOf(entry.fullPath) });
  } else if (entry.isDirectory) {
    const children = await readAll((entry as FileSystemDirectoryEntry).createReader());
    for (const child of children) await walk(child, out, task);
  }
}

/** Files and whole folders dropped on the page. */
export async function filesFromDrop(dt: DataTransfer, task: string): Promise<PickedFile[]> {
  const out: PickedFile[] = [];
  const entries = Array.from(dt.items)
    .filter((item) => item.kind === "file")
    .map((item) => item.webkitGetAsEntry?.() ?? null);
  if (entries.some((e) => e !== null)) {
    for (const entry of entries) if (entry) await walk(entry, out, task);
    return out;
  }
  return filesFromInput(dt.files, task);
}

export interface UploadTotals {
  done: number;
  total: number;
  accepted: number;
  duplicate: number;
  rejected: number;
  rejections: { path: string; reason: string }[];
}

/** The server's limit on a client id's length (core/validation.py, max_client_id_length). */
const MAX_CLIENT_ID = 128;

/**
 * The client id a file is uploaded under: `<label>/<file name>`, as the CLI names
 * `DIR/<label>/<file>`, so the sample shows where it came from and a re-upload of the same file
 * is a duplicate. Too long an id is left to the server (it derives one from the bytes).
 */
export function clientIdFor(label: string, fileName: string): string {
  // Detection uploads have no label: the file name alone.
  const id = label ? `${label}/${fileName}` : fileName;
  return id.length <= MAX_CLIENT_ID ? id : "";
}

const BATCH_FILES = 40;
const BATCH_BYTES = 8 * 1024 * 1024;

/** Upload in batches; `onProgress` after each batch. Labels: folder name, else `fallbackLabel`. */
export async function uploadFiles(
  project: string,
  files: PickedFile[],
  fallbackLabel: string,
  onProgress: (totals: UploadTotals) => void,
): Promise<UploadTotals> {
  const totals: UploadTotals = {
    done: 0,
    total: files.length,
    accepted: 0,
    duplicate: 0,
    rejected: 0,
    rejections: [],
  };
  onProgress({ ...totals });
  let i = 0;
  while (i < files.length) {
    const batch: PickedFile[] = [];
    let bytes = 0;
    while (i < files.length && batch.length < BATCH_FILES && (bytes < BATCH_BYTES || !batch.length)) {
      const f = files[i++] as PickedFile;
      batch.push(f);
      bytes += f.file.size;
    }
    const summary = await api.uploadSamples(
      project,
      batch.map((f) => {
        const label = f.folder ?? fallbackLabel;
        return { file: f.file, name: f.file.name, label, clientId: clientIdFor(label, f.file.name) };
      }),
    );
    totals.accepted += summary.accepted;
    totals.duplicate += summary.duplicate;
    totals.rejected += summary.rejected;
    summary.results.forEach((r: SampleResult, k: number) => {
      if (r.status === "rejected") {
        totals.rejections.push({ path: batch[k]?.path ?? r.filename ?? "?", reason: r.reason || r.error || "rejected" });
      }
    });
    totals.done += batch.length;
    onProgress({ ...totals, rejections: [...totals.rejections] });
  }
  return totals;
}
