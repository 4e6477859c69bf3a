// Typed calls to the REST API (/v1). Every request carries the admin token; a 401 signs out.

import { authHeaders, signOut } from "./auth";
import type { Box, ScoredBox } from "./boxes";

export interface InputSpec {
  width: number;
  height: number;
  color_mode: string;
  normalization: string;
  channels?: number | null;
  scale?: number | null;
  offset?: number | null;
  /** Audio settings (audio-classification projects only). */
  audio?: AudioSpec | null;
  /** Sensor settings (sensor-classification projects only). */
  sensor?: SensorSpec | null;
  /** Detector settings (object-detection projects only). */
  detection?: DetectionSpec | null;
}

export interface DetectionSpec {
  max_detections: number;
  score_threshold: number;
  iou_threshold: number;
}

export const DETECTION = "object-detection";

/** Whether a project's samples are images (classification or detection). */
export const isImageTask = (task: string): boolean => task === "image-classification" || task === DETECTION;

export interface AudioSpec {
  sample_rate_hz: number;
  clip_ms: number;
  long_clips: string;
  clip_samples?: number | null;
}

export interface SensorSpec {
  channels: string[];
  rate_hz: number;
  window: number;
  stride: number;
  framing: string;
}

/** One line describing what the model takes in, for any task (images, audio, sensors). */
export function describeInput(task: string, spec: InputSpec): string {
  if (spec.audio) {
    const a = spec.audio;
    return `${a.sample_rate_hz / 1000} kHz mono · ${a.clip_ms} ms clips (${a.clip_samples ?? Math.round((a.sample_rate_hz * a.clip_ms) / 1000)} samples)`;
  }
  if (spec.sensor) {
    const s = spec.sensor;
    return `${s.channels.join(", ")} at ${s.rate_hz} Hz · window ${s.window}, stride ${s.stride} (${s.framing})`;
  }
  if (!isImageTask(task)) return task;
  const base = `${spec.width}×${spec.height} ${spec.color_mode} · ${spec.normalization}`;
  return spec.detection ? `${base} · up to ${spec.detection.max_detections} boxes` : base;
}

export interface Project {
  id: string;
  name: string;
  task: string;
  labels: string[];
  labels_fixed: boolean;
  input_spec: InputSpec;
  created_at: string;
  promoted_version: number | null;
}

export interface Sample {
  id: string;
  project_id: string;
  client_id: string;
  label: string;
  sha256: string;
  size: number;
  media_type: string;
  width: number;
  height: number;
  created_at: string;
  data_url: string;
  /** Detection samples: the boxes (empty: an image without boxes); absent or null otherwise. */
  boxes?: Box[] | null;
}

export interface SampleResult {
  index: number;
  filename: string | null;
  client_id: string;
  status: "accepted" | "duplicate" | "rejected";
  sample_id: string | null;
  error_code: number | null;
  error: string | null;
  reason: string;
}

export interface UploadSummary {
  results: SampleResult[];
  total: number;
  accepted: number;
  duplicate: number;
  rejected: number;
}

export interface Hyperparameters {
  epochs?: number;
  batch_size?: number;
  learning_rate?: number;
  validation_split?: number;
  seed?: number;
  architecture?: string;
  base_model?: string;
  augment_flip?: boolean;
  augment_rotation?: number;
  augment_zoom?: number;
  augment_contrast?: number;
  early_stopping_patience?: number;
  class_weights?: boolean;
  dropout?: number;
  formats?: string[];
  allow_random_init?: boolean;
}

export type JobState = "queued" | "running" | "succeeded" | "failed" | "cancelled";

export interface Job {
  id: string;
  project_id: string;
  state: JobState;
  hyperparameters: Hyperparameters;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  attempts: number;
  error: string;
  cancel_requested: boolean;
  model_version: number | null;
}

export interface JobEvent {
  job_id: string;
  seq: number;
  kind: "state" | "progress" | "epoch" | "evaluation" | "log" | "release" | "phase";
  data: Record<string, unknown>;
  created_at: string;
}

export interface Artifact {
  format: string;
  size: number;
  sha256: string;
}

export interface ModelVersion {
  project_id: string;
  version: number;
  job_id: string;
  created_at: string;
  current: boolean;
  metrics: { accuracy: number | null; tflite_accuracy: Record<string, number> };
  artifacts: Artifact[];
  status: "current" | "candidate" | "retired";
  decision: ReleaseDecision | null;
  warnings: string[];
  eval_accuracy: Record<string, number>;
  eval_set_size: number;
}

export interface ReleasePolicy {
  mode: "auto" | "manual";
  margin: number;
  min_accuracy: number | null;
  min_per_class_recall: number | null;
  max_int8_drop: number | null;
  rollout_percent: number;
  rollout_hours: number | null;
}

export interface Rollout {
  version: number;
  previous_version: number;
  percent: number;
  started_at: string;
  complete_at: string | null;
}

export interface ReleaseDecision {
  promoted: boolean;
  action: string;
  reason: string;
  policy: ReleasePolicy;
  compared_format: string;
  accuracy: number | null;
  current_version: number | null;
  current_accuracy: number | null;
  checks: string[];
}

export interface ReleaseRecord {
  id: number;
  version: number | null;
  previous_version: number | null;
  action: string;
  reason: string;
  actor: string;
  job_id: string;
  created_at: string;
}

/** The model card (manifest.json, also embedded in every .tflite). */
export interface ModelCard {
  version: number;
  project: { id: string; name: string };
  job_id: string;
  created_at: string;
  labels: string[];
  /** Images: the keys below; audio and sensor tasks: their own keys (rate, clip or window, channels…). */
  input: {
    width?: number;
    height?: number;
    channels: number | string[];
    color_mode?: string;
    scale?: number;
    offset?: number;
    [key: string]: unknown;
  };
  metrics: { validation_accuracy?: Record<string, number>; per_class?: PerClass[]; confusion_matrix?: number[][] };
  evaluation: {
    eval_set: { num_samples: number; class_counts: Record<string, number>; description: string };
    formats: Record<string, { accuracy: number }>;
  } | null;
  release: ReleaseDecision | null;
  dataset: { num_samples: number; class_counts: Record<string, number> };
  warnings: string[];
  files: Record<string, { file: string; sha256: string; size: number }>;
}

export interface PerClass {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

export interface Misclassified {
  sample_id: string;
  label: string;
  predicted: string;
  score: number;
}

/** The full metrics of a version (GET .../models/{v}/metrics) or a job's `evaluation` event. */
export interface Metrics {
  /** "object-detection" for detectors (see DetectionMetrics); absent for classifiers. */
  task?: string;
  accuracy?: number;
  loss?: number;
  macro_f1?: number;
  labels?: string[];
  per_class?: PerClass[];
  confusion_matrix?: number[][];
  tflite?: Record<string, { accuracy?: number; size_bytes?: number; agreement_with_keras?: number }>;
  misclassified?: Misclassified[];
  num_train?: number;
  num_validation?: number;
  epochs_run?: number;
  train_seconds?: number;
}

/** Average precision of one class (COCO style, on the validation split). */
export interface DetectionClassAp {
  label: string;
  ap50: number | null;
  ap50_95: number | null;
  /** Ground-truth boxes of the class in the validation split. */
  num_gt?: number;
  num_detections?: number;
}

/** mAP of one model (the Keras model, or one exported file run in LiteRT). */
export interface DetectionReport {
  map50: number | null;
  map50_95: number | null;
  per_class?: DetectionClassAp[];
  size_bytes?: number;
}

/** A validation image with its ground truth and what the exported model found. */
export interface DetectionExample {
  sample_id: string;
  ground_truth: Box[];
  detections: ScoredBox[];
}

/** Object-detection metrics (`task` = "object-detection"; the trainer's metric keys). */
export interface DetectionMetrics {
  task: "object-detection";
  /** The Keras model's report, with each exported file's under `tflite`. */
  detection?: DetectionReport & { tflite?: Record<string, DetectionReport> };
  detection_examples?: DetectionExample[];
  detection_examples_source?: string;
  labels?: string[];
  num_train?: number;
  num_validation?: number;
  num_validation_boxes?: number;
  epochs_run?: number;
}

export interface Prediction {
  predictions: { label: string; index: number; score: number }[];
  version: number;
  latency_ms: number;
}

export interface Token {
  id: string;
  kind?: string;
  role?: string;
  name?: string;
  project_id: string | null;
  created_at?: string;
  expires_at: string | null;
  revoked_at?: string | null;
  token?: string;
}

export const FORMATS = ["keras", "float32", "float16", "dynamic-int8", "int8"] as const;
export const ARCHITECTURES = ["small-cnn", "mobilenet-v3-small", "mobilenet-v2"] as const;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    readonly error: string,
    message: string,
  ) {
    super(message);
  }
}

async function toError(resp: Response): Promise<ApiError> {
  let body: { code?: number; error?: string; message?: string } = {};
  try {
    body = (await resp.json()) as typeof body;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(
    resp.status,
    body.code ?? 0,
    body.error ?? "http_error",
    body.message ?? `${resp.status} ${resp.statusText}`,
  );
}

/** fetch() with the token; throws ApiError on a non-2xx answer (and signs out on 401). */
export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  for (const [k, v] of Object.entries(authHeaders())) headers.set(k, v);
  const resp = await fetch(path, { ...init, headers });
  if (resp.status === 401) {
    const err = await toError(resp);
    signOut(err.message || "Your token was refused; sign in again.");
    throw err;
  }
  if (!resp.ok) throw await toError(resp);
  return resp;
}

export async function getJson<T>(path: string): Promise<T> {
  return (await (await request(path)).json()) as T;
}

export async function sendJson<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "Content-Type": "application/json" };
  }
  const resp = await request(path, init);
  if (resp.status === 204) return undefined as T;
  return (await resp.json()) as T;
}

const enc = encodeURIComponent;

export const projectPath = (p: string): string => `/v1/projects/${enc(p)}`;

export const api = {
  listProjects: async (): Promise<Project[]> => {
    const all: Project[] = [];
    let token = "";
    do {
      const page = await getJson<{ projects: Project[]; next_page_token: string }>(
        `/v1/projects?page_size=1000&page_token=${enc(token)}`,
      );
      all.push(...page.projects);
      token = page.next_page_token;
    } while (token);
    return all;
  },
  getProject: (p: string) => getJson<Project>(projectPath(p)),
  createProject: (body: {
    name: string;
    task: string;
    labels: string[];
    input_spec:
      | Pick<InputSpec, "width" | "height" | "color_mode" | "normalization">
      | (Pick<InputSpec, "width" | "height" | "color_mode" | "normalization"> & { detection: DetectionSpec })
      | { audio: Omit<AudioSpec, "clip_samples"> }
      | { sensor: SensorSpec };
  }) => sendJson<Project>("POST", "/v1/projects", body),

  /** Samples per label; detection projects add boxes per label and images without boxes. */
  classCounts: (p: string) =>
    getJson<{
      counts: Record<string, number>;
      total: number;
      box_counts?: Record<string, number> | null;
      images_without_boxes?: number | null;
    }>(`${projectPath(p)}/class-counts`),
  listSamples: (p: string, label: string, pageSize: number, pageToken: string) => {
    const q = new URLSearchParams({ page_size: String(pageSize), page_token: pageToken });
    if (label) q.set("label", label);
    return getJson<{ samples: Sample[]; next_page_token: string }>(
      `${projectPath(p)}/samples?${q.toString()}`,
    );
  },
  getSample: (p: string, id: string) => getJson<Sample>(`${projectPath(p)}/samples/${enc(id)}`),
  deleteProject: (p: string) =>
    sendJson<{ project: Project; samples_deleted: number }>("DELETE", projectPath(p)),
  deleteSample: (p: string, id: string) =>
    sendJson<void>("DELETE", `${projectPath(p)}/samples/${enc(id)}`),
  /** Replace a detection sample's boxes ([] = an image without boxes); the server sets its label. */
  setBoxes: (p: string, id: string, boxes: Box[]) =>
    sendJson<Sample>("PUT", `${projectPath(p)}/samples/${enc(id)}/boxes`, { boxes }),
  relabelSample: (p: string, id: string, label: string) =>
    sendJson<Sample>("PATCH", `${projectPath(p)}/samples/${enc(id)}`, { label }),
  uploadSamples: async (
    p: string,
    files: { file: Blob; name: string; label: string; clientId?: string }[],
  ) => {
    const form = new FormData();
    for (const f of files) form.append("files", f.file, f.name);
    for (const f of files) form.append("labels", f.label);
    // One per file, in order; an empty one lets the server derive the id from the bytes.
    for (const f of files) form.append("client_ids", f.clientId ?? "");
    const resp = await request(`${projectPath(p)}/samples`, { method: "POST", body: form });
    return (await resp.json()) as UploadSummary;
  },

  startJob: (p: string, hp: Hyperparameters) =>
    sendJson<Job>("POST", `${projectPath(p)}/jobs`, hp),
  listJobs: (p: string) =>
    getJson<{ jobs: Job[]; next_page_token: string }>(`${projectPath(p)}/jobs?page_size=50`),
  getJob: (id: string) => getJson<Job>(`/v1/jobs/${enc(id)}`),
  cancelJob: (id: string) => sendJson<Job>("POST", `/v1/jobs/${enc(id)}:cancel`),

  listModels: (p: string) =>
    getJson<{ versions: ModelVersion[]; current_version: number | null }>(
      `${projectPath(p)}/models`,
    ),
  getModel: (p: string, v: number | string) =>
    getJson<ModelVersion>(`${projectPath(p)}/models/${enc(String(v))}`),
  modelMetrics: (p: string, v: number | string) =>
    getJson<Metrics>(`${projectPath(p)}/models/${enc(String(v))}/metrics`),
  promote: (p: string, v: number, reason = "", pin = false) =>
    sendJson<ModelVersion>("POST", `${projectPath(p)}/models/${v}:promote`, { reason, pin }),
  rollback: (p: string, reason = "") =>
    sendJson<ModelVersion>("POST", `${projectPath(p)}/models:rollback`, { reason }),
  releases: (p: string) =>
    getJson<{ releases: ReleaseRecord[] }>(`${projectPath(p)}/releases`),
  releasePolicy: (p: string) =>
    getJson<{ policy: ReleasePolicy; pinned: boolean; rollout: Rollout | null }>(`${projectPath(p)}/release-policy`),
  setReleasePolicy: (p: string, policy: ReleasePolicy) =>
    sendJson<{ policy: ReleasePolicy; pinned: boolean; rollout: Rollout | null }>(
      "PUT",
      `${projectPath(p)}/release-policy`,
      policy,
    ),
  modelCard: (p: string, v: number | string) =>
    getJson<ModelCard>(`${projectPath(p)}/models/${enc(String(v))}/manifest`),
  downloadModel: async (p: string, v: number, format: string): Promise<{ blob: Blob; name: string }> => {
    const resp = await request(
      `${projectPath(p)}/models/${v}/download?format=${enc(format)}`,
    );
    const disposition = resp.headers.get("Content-Disposition") ?? "";
    const match = /filename="([^"]+)"/.exec(disposition);
    const ext = format === "keras" ? ".keras" : ".tflite";
    return { blob: await resp.blob(), name: match?.[1] ?? `model-${format}${ext}` };
  },
  predict: async (p: string, image: Blob, topK = 3, version = 0) => {
    const form = new FormData();
    form.append("file", image, "image");
    form.append("top_k", String(topK));
    form.append("version", String(version));
    const resp = await request(`${projectPath(p)}/predict`, { method: "POST", body: form });
    return (await resp.json()) as Prediction;
  },

  listTokens: async (project: string): Promise<Token[]> => {
    const body = await getJson<Token[] | { tokens: Token[] }>(`/v1/tokens?project=${enc(project)}`);
    return Array.isArray(body) ? body : body.tokens;
  },
  createDeviceToken: (project: string, name: string, ttlDays: number) =>
    sendJson<Token>("POST", "/v1/tokens", {
      kind: "device",
      project,
      name,
      ttl_days: ttlDays,
    }),
  revokeToken: (id: string) => sendJson<void>("DELETE", `/v1/tokens/${enc(id)}`),
};

/** A readable one-liner for any thrown value. */
export function describe(err: unknown): string {
  if (err instanceof ApiError) return err.code ? `${err.message} (error ${err.code})` : err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Save a blob as a file through a temporary object URL. */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
