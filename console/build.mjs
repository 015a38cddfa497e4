// Builds the console into dist/: one JavaScript bundle and one stylesheet, each named by a
// hash of its content (so they can be cached for good), and index.html naming them. No inline
// script or style anywhere: the server's Content-Security-Policy allows only 'self'.
import * as esbuild from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";

const dist = new URL("./dist/", import.meta.url).pathname;
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

const out = await esbuild.build({
  entryPoints: ["src/main.js"],
  bundle: true,
  minify: true,
  format: "esm",
  platform: "browser",
  target: ["es2020"],
  write: false,
  outdir: dist,
  entryNames: "app",
  legalComments: "none",
  logLevel: "warning",
});

const names = {};
for (const f of out.outputFiles) {
  const ext = f.path.endsWith(".css") ? "css" : "js";
  const hash = createHash("sha256").update(f.contents).digest("hex").slice(0, 12);
  names[ext] = `app-${hash}.${ext}`;
  writeFileSync(dist + names[ext], f.contents);
}
const html = readFileSync("src/index.html", "utf8")
  .replace("%JS%", "/console/" + names.js)
  .replace("%CSS%", "/console/" + names.css);
writeFileSync(dist + "index.html", html);
console.log(`console: dist/${names.js}, dist/${names.css}, dist/index.html`);
