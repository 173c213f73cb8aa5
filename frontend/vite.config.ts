/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

const hub = process.env.PROXUS_HUB_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      "/api": { target: hub, changeOrigin: false },
    },
  },
  build: {
    target: "es2022",
    // elkjs (auto-layout, ~450 kB gzip) is one large chunk, loaded only when the user asks for a layout.
    chunkSizeWarningLimit: 1600,
    rolldownOptions: {
      output: {
        // Long-lived vendor code in its own files so an app release does not bust them.
        codeSplitting: {
          groups: [
            { name: "react", test: /node_modules[\\/](react|react-dom|scheduler)[\\/]/ },
            { name: "xyflow", test: /node_modules[\\/](@xyflow|d3-[a-z]+|zustand|classcat)[\\/]/ },
            { name: "codemirror", test: /node_modules[\\/](@codemirror|@lezer|crelt|style-mod|w3c-keyname)[\\/]/ },
          ],
        },
      },
    },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
