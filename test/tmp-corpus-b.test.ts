import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { it } from 'vitest';
import { parsers } from '../parsers/index.js';
import { Dispatcher, ParseStatus } from '../src/core/dispatch.js';
import { parseText } from './helpers/parse.js';

const mine = new Set(['postfix-cleanup', 'postfix-qmgr', 'postfix-delivery', 'postfix-bounce', 'postfix-pickup', 'postfix-postsuper', 'postfix-misc']);
const root = '/work/shared/corpus';
function walk(d: string, acc: string[]): string[] {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    if (statSync(p).isDirectory()) walk(p, acc);
    else acc.push(p);
  }
  return acc;
}
it('corpus', () => {
  const dispatcher = new Dispatcher(parsers);
  const out: Record<string, { total: number; rec: number; events: number; unknown: string[] }> = {};
  const evs: string[] = [];
  for (const f of walk(root, [])) {
    if (/\.(json|yaml|assert|md|tar\.gz)$/.test(f)) continue;
    let text = f.endsWith('.gz') ? gunzipSync(readFileSync(f)).toString('utf8') : readFileSync(f, 'utf8');
    if (f.endsWith('.ini')) text = text.split('\n').map((l) => { const m = /^log \d+ (?:pass|fail) = (.*)$/.exec(l); return m ? m[1] : ''; }).join('\n');
    text = text.split('\n').filter((l) => !l.startsWith('#')).join('\n');
    const { lines } = parseText(text, { file: f });
    for (const l of lines) {
      if (!l.record) { if (/postfix[^ ]*\/(qmgr|smtp|lmtp|cleanup|bounce|pickup|local|virtual|pipe|scache|tlsproxy|master)\[/.test(l.line)) (out['noenvelope'] ??= { total: 0, rec: 0, events: 0, unknown: [] }).unknown.push(f + ' :: ' + l.line); continue; }
      const p = dispatcher.parserFor(l.record.program);
      if (!p || !mine.has(p.id)) {
        if (/^postfix/.test(l.record.program) && !p) (out['unclaimed'] ??= { total: 0, rec: 0, events: 0, unknown: [] }).unknown.push(f + ' :: ' + l.line);
        continue;
      }
      const o = (out[p.id] ??= { total: 0, rec: 0, events: 0, unknown: [] });
      o.total++;
      if (l.status === ParseStatus.Recognised) { o.rec++; if (l.events.length) o.events++; for (const e of l.events) evs.push(JSON.stringify(e)); }
      else o.unknown.push(f.replace(root + '/', '') + ' :: ' + l.line);
    }
  }
  for (const [id, o] of Object.entries(out)) {
    console.log(`${id}: total ${o.total} recognised ${o.rec} withEvents ${o.events} unknown ${o.unknown.length}`);
    writeFileSync(`/tmp/cb/${id}.unknown.txt`, o.unknown.join('\n') + '\n');
  }
  writeFileSync('/tmp/cb/events.jsonl', evs.join('\n') + '\n');
});
