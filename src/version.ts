/**
 * The package's version, read from package.json at run time so that it has one source.
 * The file is found by walking up from this module, which works from `dist/src/` and from any
 * other output directory placed inside the package.
 */
import { readFileSync } from 'node:fs';

let cached: string | undefined;

export function packageVersion(): string {
  if (cached !== undefined) return cached;
  for (let url = new URL('./', import.meta.url); ; url = new URL('../', url)) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', url), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'nodevisor' && typeof pkg.version === 'string') {
        cached = pkg.version;
        return cached;
      }
    } catch {
      // No (readable) package.json here: keep walking up.
    }
    if (url.pathname === '/') return 'unknown';
  }
}
