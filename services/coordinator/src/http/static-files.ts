import { readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';

const WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url));

/** The page's files, by URL path: a fixed list, so no path can escape the folder. */
const FILES: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/plots.js': { file: 'plots.js', type: 'text/javascript; charset=utf-8' },
  '/table.js': { file: 'table.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

const cache = new Map<string, Buffer>();

/** Serves one of the dashboard's files; false when `path` is not one. */
export async function serveStatic(path: string, res: ServerResponse): Promise<boolean> {
  const entry = Object.hasOwn(FILES, path) ? FILES[path] : undefined;
  if (!entry) return false;
  let body = cache.get(entry.file);
  if (!body) {
    body = await readFile(WEB_DIR + entry.file);
    cache.set(entry.file, body);
  }
  res.writeHead(200, { 'content-type': entry.type, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
  res.end(body);
  return true;
}
