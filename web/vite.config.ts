import { defineConfig } from "vite";

// The server (src/mobiletrain/api/rest/web.py) serves what this writes to src/mobiletrain/web/dist.
// `npm run dev` proxies the API to a server on MOBILETRAIN_HTTP (default 127.0.0.1:8000).
const api = process.env.MOBILETRAIN_HTTP ?? "http://127.0.0.1:8000";

export default defineConfig({
  base: "/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "../src/mobiletrain/web/dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    proxy: {
      "/v1": { target: api, changeOrigin: false },
      "/healthz": { target: api },
    },
  },
});
