/**
 * `floodgate demo` (what `npm start` runs): parses the bundled demo log — a
 * synthetic day on a Zimbra server with one compromised account — and prints
 * what the correlated messages show per account. A first look that needs
 * nothing installed but Node.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Message } from '../correlator/message.js';
import { ZoneClock } from '../envelope/zone.js';
import { parseFiles } from '../pipeline/parse-files.js';

export const demoHelp = `Usage: floodgate demo [--json]

Parse the bundled demo log (demo/zimbra-day.log) and print, per sending
account, the messages, recipients, forged sender domains and client IPs the
correlated log shows. --json prints the table as JSON lines.`;

export const demoLog = fileURLToPath(new URL('../../../demo/zimbra-day.log', import.meta.url));

interface AccountRow {
  account: string;
  messages: number;
  recipients: number;
  bounced: number;
  senderDomains: Set<string>;
  foreignSenders: number;
  clientIps: Set<string>;
}

function domainOf(addr: string): string {
  const at = addr.lastIndexOf('@');
  return at < 0 ? '' : addr.slice(at + 1).toLowerCase();
}

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write(demoHelp + '\n');
    return 0;
  }
  const rows = new Map<string, AccountRow>();
  const started = performance.now();
  const result = await parseFiles([demoLog], {
    zone: new ZoneClock('UTC'),
    year: 2026,
    correlate: true,
    onMessage: (m: Message) => {
      if (!m.saslUser) return;
      const account = m.saslUser.toLowerCase();
      let r = rows.get(account);
      if (!r) {
        r = { account, messages: 0, recipients: 0, bounced: 0, senderDomains: new Set(), foreignSenders: 0, clientIps: new Set() };
        rows.set(account, r);
      }
      r.messages++;
      r.recipients += m.recipients.length;
      r.bounced += m.recipients.filter((x) => x.status === 'bounced').length;
      const sd = domainOf(m.sender ?? '');
      if (sd) r.senderDomains.add(sd);
      if (sd && sd !== domainOf(account)) r.foreignSenders++;
      if (m.clientIp) r.clientIps.add(m.clientIp);
    },
  });
  const ms = performance.now() - started;
  const top = [...rows.values()].sort((a, b) => b.recipients - a.recipients).slice(0, 10);
  const s = result.stats;
  if (values.json) {
    for (const r of top) {
      process.stdout.write(JSON.stringify({ ...r, senderDomains: [...r.senderDomains], clientIps: r.clientIps.size }) + '\n');
    }
    return 0;
  }
  const out: string[] = [];
  out.push(`floodgate demo — ${demoLog}`);
  out.push(`${s.lines} lines → ${s.events} events, ${s.messages} messages in ${ms.toFixed(0)} ms (unknown ${s.unknown}, malformed ${s.malformed})`);
  out.push('');
  out.push('Top authenticated senders by recipients:');
  out.push(`${'account'.padEnd(28)}${'msgs'.padStart(6)}${'rcpts'.padStart(7)}${'bounced'.padStart(9)}${'forged-from'.padStart(13)}${'ips'.padStart(5)}  sender domains`);
  for (const r of top) {
    const domains = [...r.senderDomains].slice(0, 4).join(',') + (r.senderDomains.size > 4 ? ',…' : '');
    out.push(`${r.account.padEnd(28)}${String(r.messages).padStart(6)}${String(r.recipients).padStart(7)}${String(r.bounced).padStart(9)}${String(r.foreignSenders).padStart(13)}${String(r.clientIps.size).padStart(5)}  ${domains}`);
  }
  const suspicious = top.filter((r) => r.foreignSenders > 0);
  out.push('');
  if (suspicious.length > 0) {
    out.push(`An account that authenticates as itself but sends as other domains is the classic sign of a stolen password: ${suspicious.map((r) => r.account).join(', ')}.`);
  }
  out.push('Parse your own logs: npx floodgate parse /var/log/zimbra.log --messages > messages.jsonl');
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}
