import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { it } from 'vitest';
import { parsers } from '../parsers/index.js';
import { Dispatcher, ParseStatus } from '../src/core/dispatch.js';
import { parseText } from './helpers/parse.js';

const mine = new Set(['amavis', 'policyd-spf', 'saslauthd', 'zimbra-mailbox', 'dovecot']);
const root = '/work/shared/corpus';
function walk(d: string, acc: string[]): string[] {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    if (statSync(p).isDirectory()) walk(p, acc);
    else acc.push(p);
  }
  return acc;
}
const own = new Map<string, string>([
  ['amavis', 'amavis'], ['amavisd', 'amavis'], ['amavisd-new', 'amavis'],
  ['policyd-spf', 'policyd-spf'], ['postfix/policy-spf', 'policyd-spf'], ['saslauthd', 'saslauthd'], ['zimbra-mailbox', 'zimbra-mailbox'],
]);
for (const k of ['dovecot', 'dovecot-auth', 'auth', 'auth-worker', 'imap-login', 'pop3-login', 'submission-login', 'managesieve-login', 'imap', 'pop3', 'lmtp', 'lda', 'deliver', 'indexer-worker', 'imap-hibernate']) own.set(k, 'dovecot');
it('corpus', () => {
  const dispatcher = new Dispatcher(parsers);
  const out: Record<string, { total: number; rec: number; events: number; unknown: string[] }> = {};
  const all: Record<string, string[]> = {};
  for (const f of walk(root, [])) {
    if (/\.(json|yaml|assert|md|tar\.gz)$/.test(f)) continue;
    let text = f.endsWith('.gz') ? gunzipSync(readFileSync(f)).toString('utf8') : readFileSync(f, 'utf8');
    if (f.endsWith('.ini')) text = text.split('\n').map((l) => { const m = /^log \d+ (?:pass|fail) = (.*)$/.exec(l); return m ? m[1] : ''; }).join('\n');
    text = text.split('\n').filter((l) => !l.startsWith('#')).join('\n');
    const { lines } = parseText(text, { file: f });
    for (const l of lines) {
      if (!l.record) continue;
      const p = dispatcher.parserFor(l.record.program);
      const { programKey } = { programKey: (s: string) => { if (s.startsWith('postfix')) { const i = s.lastIndexOf('/'); return i > 0 ? 'postfix/' + s.slice(i + 1) : s; } const i = s.indexOf('('); return i > 0 ? s.slice(0, i) : s; } };
      const id = p && mine.has(p.id) ? p.id : own.get(programKey(l.record.program));
      if (!id) continue;
      const o = (out[id] ??= { total: 0, rec: 0, events: 0, unknown: [] });
      (all[id] ??= []).push(l.line);
      o.total++;
      if (l.status === ParseStatus.Recognised) { o.rec++; if (l.events.length) o.events++; }
      else o.unknown.push(f.replace(root + '/', '') + ' :: ' + l.line);
    }
  }
  for (const [id, o] of Object.entries(out)) {
    console.log(`${id}: total ${o.total} recognised ${o.rec} withEvents ${o.events} unknown ${o.unknown.length}`);
    writeFileSync(`/tmp/cc/${id}.unknown.txt`, o.unknown.join('\n') + '\n');
    writeFileSync(`/tmp/cc/${id}.all.txt`, all[id]!.join('\n') + '\n');
  }
});
