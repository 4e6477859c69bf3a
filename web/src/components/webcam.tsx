import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

/**
 * A webcam preview with a capture button. Frames are centre-cropped to `width`×`height`'s aspect
 * and scaled to that size (what a phone sends), then handed to `onCapture` as PNG or JPEG.
 */
export function Webcam({
  width,
  height,
  onCapture,
  captureText = "Capture",
  busy = false,
  children,
}: {
  width: number;
  height: number;
  onCapture: (frame: Blob) => void;
  captureText?: string;
  busy?: boolean;
  children?: ComponentChildren;
}) {
  const video = useRef<HTMLVideoElement>(null);
  const [stream, setStream] = useState<MediaStream | null>(null);
  const [error, setError] = useState("");

  useEffect(() => () => stream?.getTracks().forEach((t) => t.stop()), [stream]);

  const start = async () => {
    setError("");
    if (!navigator.mediaDevices?.getUserMedia) {
      setError("This browser offers no camera here (a camera needs HTTPS or localhost).");
      return;
    }
    try {
      const media = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: "environment" },
        audio: false,
      });
      setStream(media);
      if (video.current) {
        video.current.srcObject = media;
        await video.current.play().catch(() => undefined);
      }
    } catch (err) {
      setError(`Camera unavailable: ${err instanceof Error ? err.message : String(err)}`);
    }
  };

  const stop = () => {
    stream?.getTracks().forEach((t) => t.stop());
    setStream(null);
  };

  const capture = () => {
    const v = video.current;
    if (!v || !v.videoWidth) return;
    const target = width / height;
    let sw = v.videoWidth;
    let sh = v.videoHeight;
    if (sw / sh > target) sw = sh * target;
    else sh = sw / target;
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    ctx.drawImage(v, (v.videoWidth - sw) / 2, (v.videoHeight - sh) / 2, sw, sh, 0, 0, width, height);
    const small = width * height <= 128 * 128;
    canvas.toBlob((blob) => blob && onCapture(blob), small ? "image/png" : "image/jpeg", 0.92);
  };

  useEffect(() => {
    if (stream && video.current && video.current.srcObject !== stream) {
      video.current.srcObject = stream;
      void video.current.play().catch(() => undefined);
    }
  }, [stream]);

  return (
    <div class="webcam">
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      <video
        ref={video}
        class={stream ? "" : "hidden"}
        muted
        playsInline
        aria-label="Webcam preview"
      />
      <div class="row">
        {children}
        {stream ? (
          <>
            <button type="button" class="primary" onClick={capture} disabled={busy}>
              {captureText}
            </button>
            <button type="button" onClick={stop}>
              Close camera
            </button>
          </>
        ) : (
          <button type="button" onClick={() => void start()}>
            Open webcam
          </button>
        )}
      </div>
    </div>
  );
}
