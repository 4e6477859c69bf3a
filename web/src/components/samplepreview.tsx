import { useEffect, useState } from "preact/hooks";

import { request, type Sample } from "../api";
import { parseSensor, parseWav, polylinePoints, waveformColumns } from "../preview";
import { AuthImage } from "./common";

// Sample bytes need the Authorization header, so they are fetched, then shown from a blob URL
// (audio) or decoded in the page (waveform, sensor plot). Bytes never change for a sample URL,
// so a small session cache keeps paging back and forth cheap.
const bytesCache = new Map<string, Promise<ArrayBuffer>>();
const CACHE_LIMIT = 200;

function loadBytes(url: string): Promise<ArrayBuffer> {
  let hit = bytesCache.get(url);
  if (!hit) {
    hit = request(url).then((r) => r.arrayBuffer());
    hit.catch(() => bytesCache.delete(url));
    bytesCache.set(url, hit);
    if (bytesCache.size > CACHE_LIMIT) {
      const oldest = bytesCache.keys().next().value;
      if (oldest !== undefined) bytesCache.delete(oldest);
    }
  }
  return hit;
}

function useBytes(url: string): { bytes: ArrayBuffer | null; failed: boolean } {
  const [bytes, setBytes] = useState<ArrayBuffer | null>(null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    let live = true;
    setBytes(null);
    setFailed(false);
    if (!url) return;
    loadBytes(url).then(
      (b) => live && setBytes(b),
      () => live && setFailed(true),
    );
    return () => {
      live = false;
    };
  }, [url]);
  return { bytes, failed };
}

function Missing({ size, alt }: { size: number; alt: string }) {
  return (
    <span class="thumb thumb-missing" style={{ width: size, height: size }} role="img" aria-label={alt}>
      ?
    </span>
  );
}

/** A waveform drawn as min/max bars per pixel column (mono mix), as SVG. */
export function Waveform({ bytes, width, height }: { bytes: ArrayBuffer; width: number; height: number }) {
  let wav;
  try {
    wav = parseWav(bytes);
  } catch {
    return <Missing size={height} alt="Undecodable WAV" />;
  }
  const { min, max } = waveformColumns(wav.samples, width);
  const mid = height / 2;
  // One vertical segment per column (at least 1 px tall so silence still shows a line).
  const d = min
    .map((lo, x) => {
      const top = mid - (max[x] as number) * mid;
      const bottom = Math.max(mid - lo * mid, top + 1);
      return `M${x + 0.5} ${top.toFixed(1)}V${bottom.toFixed(1)}`;
    })
    .join("");
  const seconds = wav.samples.length / wav.sampleRate;
  return (
    <svg
      class="waveform"
      data-testid="waveform"
      width={width}
      height={height}
      viewBox={`0 0 ${width} ${height}`}
      role="img"
      aria-label={`Waveform, ${seconds.toFixed(2)} s at ${wav.sampleRate} Hz`}
    >
      <path d={d} />
    </svg>
  );
}

/** One polyline per channel on a shared scale, with the channel names as a tooltip. */
export function SensorPlot({
  bytes,
  mediaType,
  width,
  height,
}: {
  bytes: ArrayBuffer;
  mediaType: string;
  width: number;
  height: number;
}) {
  let series;
  try {
    series = parseSensor(new TextDecoder().decode(bytes), mediaType);
  } catch {
    return <Missing size={height} alt="Undecodable sensor recording" />;
  }
  const lines = polylinePoints(series, width, height);
  const steps = series.values[0]?.length ?? 0;
  return (
    <svg
      class="sensor-plot"
      data-testid="sensor-plot"
      width={width}
      height={height}
      viewBox={`0 0 ${width} ${height}`}
      role="img"
      aria-label={`Sensor recording: ${series.channels.join(", ")}, ${steps} readings`}
    >
      <title>{series.channels.join(", ")}</title>
      {lines.map((points, i) => (
        <polyline key={i} class={`series series-${i % 6}`} data-channel={series.channels[i]} points={points} />
      ))}
    </svg>
  );
}

function AudioThumb({ src, size }: { src: string; size: number }) {
  const { bytes, failed } = useBytes(src);
  if (failed) return <Missing size={size} alt="Sample not available" />;
  if (!bytes) return <span class="thumb thumb-loading" style={{ width: size, height: size }} aria-hidden="true" />;
  return <Waveform bytes={bytes} width={size} height={Math.round(size / 2)} />;
}

function SensorThumb({ src, mediaType, size }: { src: string; mediaType: string; size: number }) {
  const { bytes, failed } = useBytes(src);
  if (failed) return <Missing size={size} alt="Sample not available" />;
  if (!bytes) return <span class="thumb thumb-loading" style={{ width: size, height: size }} aria-hidden="true" />;
  return <SensorPlot bytes={bytes} mediaType={mediaType} width={size} height={Math.round(size * 0.6)} />;
}

function audioType(mediaType: string): boolean {
  return mediaType.startsWith("audio/");
}

function sensorType(mediaType: string): boolean {
  return mediaType === "text/csv" || mediaType === "application/json";
}

export function isAudio(sample: Sample): boolean {
  return audioType(sample.media_type);
}

export function isSensor(sample: Sample): boolean {
  return sensorType(sample.media_type);
}

/** The media type to expect for a project's samples when only an id is known (evaluation lists). */
export function mediaTypeOfTask(task: string): string {
  if (task === "audio-classification") return "audio/wav";
  // CSV or JSON: the sensor parser tells them apart by content.
  if (task === "sensor-classification") return "text/csv";
  return "image/*";
}

/** A sample's thumbnail for any task: image, waveform or sensor line plot. */
export function SampleThumb({ src, mediaType, size }: { src: string; mediaType: string; size: number }) {
  if (audioType(mediaType)) return <AudioThumb src={src} size={size} />;
  if (sensorType(mediaType)) return <SensorThumb src={src} mediaType={mediaType} size={size} />;
  return <AuthImage src={src} alt="" size={size} />;
}

/** A playable <audio> element fed from a blob URL (the data route needs the bearer token). */
export function AudioPlayer({ sample }: { sample: Sample }) {
  const { bytes, failed } = useBytes(sample.data_url);
  const [url, setUrl] = useState("");
  useEffect(() => {
    if (!bytes) return;
    const u = URL.createObjectURL(new Blob([bytes], { type: sample.media_type || "audio/wav" }));
    setUrl(u);
    return () => URL.revokeObjectURL(u);
  }, [bytes, sample.media_type]);
  if (failed) return <p class="muted">The recording could not be loaded.</p>;
  return url ? <audio class="sample-audio" data-testid="sample-audio" controls preload="metadata" src={url} /> : null;
}

/** The large preview in the sample dialog. */
export function SampleLarge({ sample }: { sample: Sample }) {
  const { bytes } = useBytes(isAudio(sample) || isSensor(sample) ? sample.data_url : "");
  if (isAudio(sample))
    return (
      <div class="sample-large">
        {bytes ? <Waveform bytes={bytes} width={280} height={96} /> : null}
        <AudioPlayer sample={sample} />
      </div>
    );
  if (isSensor(sample))
    return (
      <div class="sample-large">{bytes ? <SensorPlot bytes={bytes} mediaType={sample.media_type} width={280} height={140} /> : null}</div>
    );
  return <AuthImage src={sample.data_url} alt={`Sample labelled ${sample.label}`} size={240} />;
}
