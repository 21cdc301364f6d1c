import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { it } from 'vitest';
import { ParseStatus } from '../src/core/dispatch.js';
import { eventSchema } from '../src/core/events.js';
import { parseText } from './helpers/parse.js';

const root = '/work/shared/corpus';
function walk(d: string, acc: string[]): string[] {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    if (statSync(p).isDirectory()) walk(p, acc);
    else acc.push(p);
  }
  return acc;
}
const re = /\/(smtpd|postscreen|dnsblog|anvil)\[/;
it('corpus a', () => {
  const unknown: string[] = [];
  const evs: string[] = [];
  const bad: string[] = [];
  let total = 0;
  for (const f of walk(root, [])) {
    if (/\.(json|yaml|assert|md|tar\.gz)$/.test(f)) continue;
    let text = f.endsWith('.gz') ? gunzipSync(readFileSync(f)).toString('utf8') : readFileSync(f, 'utf8');
    if (f.endsWith('.ini')) text = text.split('\n').map((l) => { const m = /^log \d+ (?:pass|fail) = (.*)$/.exec(l); return m ? m[1]! : ''; }).join('\n');
    text = text.split('\n').filter((l) => !l.startsWith('#') && re.test(l)).join('\n');
    const { lines } = parseText(text, { file: f });
    for (const l of lines) {
      total++;
      if (l.status !== ParseStatus.Recognised) unknown.push(`${l.status} ${f.replace(root + '/', '')} :: ${l.line}`);
      for (const e of l.events) {
        const r = eventSchema.safeParse(e);
        if (r.error) bad.push(l.line + ' :: ' + JSON.stringify(e));
        evs.push(JSON.stringify(e) + '  <<  ' + l.line.slice(l.line.indexOf(']: ') + 3));
      }
    }
  }
  console.log(`total ${total} unknown ${unknown.length} events ${evs.length} bad ${bad.length}`);
  writeFileSync('/tmp/ca/unknown.txt', unknown.join('\n') + '\n');
  writeFileSync('/tmp/ca/events.txt', evs.join('\n') + '\n');
  writeFileSync('/tmp/ca/bad.txt', bad.join('\n') + '\n');
});
