// A mobiletrain client in Node.js, written from proto/mobiletrain/v1 and the docs alone:
// @grpc/grpc-js for the calls, @grpc/proto-loader to read the .proto files at run time.
//
//   cd examples/node && npm ci
//   MOBILETRAIN_TOKEN=mt_... node client.mjs --server 127.0.0.1:50051 \
//       --project flowers --images ./photos        # photos/<label>/<file>.png|jpg
//
// What it shows: the token sent as call metadata (`authorization: Bearer ...`), an
// idempotent client-streaming upload (a retry answers DUPLICATE; a client id reused for
// other bytes is REJECTED with code 34), the stable error number in the trailing metadata
// `mobiletrain-error-code`, and a resumable, SHA-256-checked model download. The last line
// printed is a JSON summary (the test in tests/e2e/test_node_example.py reads it).
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    server: { type: "string", default: process.env.MOBILETRAIN_SERVER ?? "127.0.0.1:50051" },
    project: { type: "string", default: "node-example" },
    images: { type: "string" },
    proto: { type: "string", default: resolve(here, "../../proto") },
    format: { type: "string", default: "MODEL_FORMAT_FLOAT32" },
  },
});
const token = process.env.MOBILETRAIN_TOKEN ?? "";
if (!token || !args.images) {
  console.error("usage: MOBILETRAIN_TOKEN=mt_... node client.mjs --images DIR [--server HOST:PORT]");
  process.exit(2);
}

// --- the contract: load the .proto files (no generated code) --------------------------------
const definition = protoLoader.loadSync(
  ["projects", "datasets", "models"].map((name) => `mobiletrain/v1/${name}.proto`),
  // Field names as written in the .proto (client_id), int64 as strings (offsets, sizes),
  // enums as their names, defaults filled in.
  { includeDirs: [args.proto], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true },
);
const v1 = grpc.loadPackageDefinition(definition).mobiletrain.v1;
const channel = [args.server, grpc.credentials.createInsecure()];
const projects = new v1.ProjectService(...channel);
const datasets = new v1.DatasetService(...channel);
const models = new v1.ModelService(...channel);

// Every call carries the token as metadata.
function metadata() {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  return md;
}

const deadline = () => new Date(Date.now() + 30_000);

// A failed call: its gRPC status and the mobiletrain error number from the trailers.
class CallError extends Error {
  constructor(err) {
    super(err.details || err.message);
    this.status = err.code; // grpc.status.*
    const code = err.metadata?.get("mobiletrain-error-code")?.[0];
    this.errorCode = code === undefined ? null : Number(code);
  }
}

function unary(client, method, request) {
  return new Promise((ok, fail) => {
    client[method](request, metadata(), { deadline: deadline() }, (err, reply) =>
      err ? fail(new CallError(err)) : ok(reply),
    );
  });
}

// --- the pieces of the loop ------------------------------------------------------------------
async function ensureProject(name, labels) {
  try {
    return await unary(projects, "CreateProject", { name, labels });
  } catch (err) {
    if (err.errorCode !== 11) throw err; // PROJECT_EXISTS: use it
    return unary(projects, "GetProject", { project: name });
  }
}

// UploadSamples is client streaming: the first message names the project; each message
// carries an inline batch (small images) and stays well under the 8 MiB message limit.
function upload(project, samples) {
  return new Promise((ok, fail) => {
    const call = datasets.UploadSamples(metadata(), { deadline: deadline() }, (err, reply) =>
      err ? fail(new CallError(err)) : ok(reply),
    );
    const perMessage = 3 * 1024 * 1024;
    let batch = [];
    let size = 0;
    let first = true;
    const send = () => {
      call.write({ project: first ? project : "", inline_batch: { samples: batch } });
      first = false;
      batch = [];
      size = 0;
    };
    for (const s of samples) {
      if (batch.length && size + s.data.length > perMessage) send();
      batch.push({ client_id: s.clientId, label: s.label, data: s.data });
      size += s.data.length;
    }
    if (batch.length) send();
    call.end();
  });
}

// DownloadModel streams `info` first, then the bytes; resume with `offset` and the
// version of the first attempt, then check the SHA-256 of the whole file.
function downloadPart(project, version, format, offset, stopAfter) {
  return new Promise((ok, fail) => {
    const call = models.DownloadModel({ project, version, format, offset }, metadata(), {
      deadline: deadline(),
    });
    let info = null;
    const chunks = [];
    let received = 0;
    call.on("data", (chunk) => {
      if (chunk.info) info = chunk.info;
      if (chunk.data?.length) {
        if (Number(chunk.offset) !== offset + received) {
          call.cancel();
          fail(new Error(`chunk at ${chunk.offset}, expected ${offset + received}`));
        }
        chunks.push(chunk.data);
        received += chunk.data.length;
        if (stopAfter !== null && received >= stopAfter) {
          call.cancel(); // as if the connection dropped
          ok({ info, data: Buffer.concat(chunks) });
        }
      }
    });
    call.on("error", (err) => {
      if (err.code !== grpc.status.CANCELLED) fail(new CallError(err));
    });
    call.on("end", () => ok({ info, data: Buffer.concat(chunks) }));
  });
}

async function download(project, format) {
  const first = await downloadPart(project, 0, format, 0, 1);
  const version = first.info.version; // pin it: 0 could move to a newer version meanwhile
  const rest = await downloadPart(project, version, format, first.data.length, null);
  const file = Buffer.concat([first.data, rest.data]);
  const sha256 = createHash("sha256").update(file).digest("hex");
  if (sha256 !== first.info.sha256 || file.length !== Number(first.info.size)) {
    throw new Error(`download does not match: ${sha256} vs ${first.info.sha256}`);
  }
  return { version, size: file.length, sha256, resumedAt: first.data.length };
}

function readImages(folder) {
  const samples = [];
  for (const label of readdirSync(folder).sort()) {
    for (const file of readdirSync(join(folder, label)).sort()) {
      samples.push({ clientId: `${label}/${file}`, label, data: readFileSync(join(folder, label, file)) });
    }
  }
  return samples;
}

// --- the loop --------------------------------------------------------------------------------
const summary = {};
const samples = readImages(args.images);
const labels = [...new Set(samples.map((s) => s.label))];
const project = await ensureProject(args.project, labels);
summary.project = project.name;

const firstUpload = await upload(project.name, samples);
summary.upload = { accepted: firstUpload.accepted, duplicates: firstUpload.duplicates, rejected: firstUpload.rejected };
console.log(`uploaded: ${firstUpload.accepted} accepted, ${firstUpload.duplicates} duplicate`);

// Retrying is safe: the client ids are idempotency keys.
const retry = await upload(project.name, samples);
summary.retry = { accepted: retry.accepted, duplicates: retry.duplicates, rejected: retry.rejected };

// Reusing a client id for other bytes is an error (34), not a silent drop.
const conflict = await upload(project.name, [{ ...samples[1], clientId: samples[0].clientId }]);
summary.conflict = conflict.results.map((r) => ({ status: r.status, error_code: r.error_code }));

// Errors carry their stable number in the trailers.
try {
  await unary(projects, "GetProject", { project: "no-such-project-here" });
} catch (err) {
  summary.error = { status: grpc.status[err.status], error_code: err.errorCode };
}

// The model, if the project has one (resumed after the first byte, sha256-checked).
try {
  summary.download = await download(project.name, args.format);
  console.log(`downloaded version ${summary.download.version}: ${summary.download.size} bytes`);
} catch (err) {
  if (!(err instanceof CallError) || err.errorCode !== 53) throw err; // 53: NO_MODEL yet
  summary.download = { error_code: err.errorCode };
}

for (const client of [projects, datasets, models]) client.close();
console.log(JSON.stringify(summary));
