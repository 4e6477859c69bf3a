// Collect image files from drops and pickers (folder name = label) and upload them in batches.

import { api, type SampleResult } from "./api";

export interface PickedFile {
  file: File;
  /** Path shown to people (folder/name). */
  path: string;
  /** The folder the file was in (its label), or null for loose files. */
  folder: string | null;
}

const IMAGE_EXT = /\.(jpe?g|png|webp)$/i;

export function isImage(file: File): boolean {
  return !file.name.startsWith(".") && (IMAGE_EXT.test(file.name) || file.type.startsWith("image/"));
}

function folderOf(path: string): string | null {
  const parts = path.split("/").filter(Boolean);
  return parts.length >= 2 ? (parts[parts.length - 2] ?? null) : null;
}

/** Files from an <input type=file> (with or without `webkitdirectory`). */
export function filesFromInput(list: FileList | null): PickedFile[] {
  const out: PickedFile[] = [];
  for (const file of Array.from(list ?? [])) {
    if (!isImage(file)) continue;
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

async function walk(entry: FileSystemEntry, out: PickedFile[]): Promise<void> {
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) =>
      (entry as FileSystemFileEntry).file(resolve, reject),
    );
    if (isImage(file)) out.push({ file, path: entry.fullPath.replace(/^\//, ""), folder: folderOf(entry.fullPath) });
  } else if (entry.isDirectory) {
    const children = await readAll((entry as FileSystemDirectoryEntry).createReader());
    for (const child of children) await walk(child, out);
  }
}

/** Files and whole folders dropped on the page. */
export async function filesFromDrop(dt: DataTransfer): Promise<PickedFile[]> {
  const out: PickedFile[] = [];
  const entries = Array.from(dt.items)
    .filter((item) => item.kind === "file")
    .map((item) => item.webkitGetAsEntry?.() ?? null);
  if (entries.some((e) => e !== null)) {
    for (const entry of entries) if (entry) await walk(entry, out);
    return out;
  }
  return filesFromInput(dt.files);
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
  const id = `${label}/${fileName}`;
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
