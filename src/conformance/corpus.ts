/**
 * Reads log samples out of a corpus folder whatever their packaging:
 * plain or gzip log files, fail2ban test logs (`#` annotation lines),
 * OSSEC rule tests (`log N pass = <line>`). Annotation and config files are
 * skipped.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';

const skipped = /\.(md|ya?ml|assert|json|tar\.gz|tgz|zip|txt\.json)$/i;

export interface CorpusFile {
  path: string;
  rel: string;
  lines: string[];
}

export function* corpusFiles(dir: string): Generator<CorpusFile> {
  const walk = function* (d: string): Generator<string> {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) yield* walk(p);
      else yield p;
    }
  };
  for (const path of walk(dir)) {
    const rel = relative(dir, path);
    if (skipped.test(path) || /(^|\/)(SOURCES|README|LICENSE)[^/]*$/i.test(rel)) continue;
    let buf = readFileSync(path);
    if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) buf = gunzipSync(buf);
    const text = buf.toString('utf8');
    const raw = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
    let lines: string[];
    if (path.endsWith('.ini')) {
      lines = [];
      for (const l of raw) {
        const m = /^log \d+ (?:pass|fail) = (.*)$/.exec(l);
        if (m?.[1]) lines.push(m[1]);
      }
    } else {
      lines = raw.filter((l) => l.trim() !== '' && !l.startsWith('#'));
    }
    yield { path, rel, lines };
  }
}
