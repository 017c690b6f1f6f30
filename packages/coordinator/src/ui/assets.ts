/**
 * The dashboard's static files, looked up in a fixed table made at start (no path from a request ever reaches the
 * file system): web/static (HTML, CSS), web/dist (the page's ES modules, compiled by tsc -b) and uPlot, served
 * straight from its npm package so the version is the one package-lock.json pins and nothing is copied at build time.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Asset {
  body: Buffer;
  type: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/** packages/coordinator, from dist/ui/assets.js (or src/ui/assets.ts under vitest). */
const PACKAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function addDir(out: Map<string, Asset>, dir: string, prefix: string): void {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    const type = TYPES[path.extname(name)];
    if (type) out.set(`${prefix}${name}`, { body: readFileSync(path.join(dir, name)), type });
  }
}

/**
 * URL path -> file, read once: the files are small (~80 KB in all) and a running coordinator serves the build it
 * started with even if dist/ is rebuilt under it.
 */
export function loadAssets(webDir = path.join(PACKAGE_DIR, 'web')): Map<string, Asset> {
  const out = new Map<string, Asset>();
  addDir(out, path.join(webDir, 'static'), '/');
  addDir(out, path.join(webDir, 'dist'), '/js/');
  const index = out.get('/index.html');
  if (index) out.set('/', index);
  const require = createRequire(import.meta.url);
  for (const [file, url] of [['uplot/dist/uPlot.iife.min.js', '/vendor/uPlot.iife.min.js'], ['uplot/dist/uPlot.min.css', '/vendor/uPlot.min.css']] as const)
    out.set(url, { body: readFileSync(require.resolve(file)), type: TYPES[path.extname(file)]! });
  return out;
}

/** Whether the page's own code was built (web/dist); a missing build is reported once at start, not per request. */
export function hasAppBundle(assets: Map<string, Asset>): boolean {
  return assets.has('/js/app.js') && assets.has('/');
}
