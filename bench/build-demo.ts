/**
 * Builds demo/zimbra-day.log (`npm run demo:build`): one synthetic day
 * (2026-11-27, UTC) on a Zimbra server, deterministic (bench/scenarios.ts):
 *
 * - background: 24 users sending a few mails an hour from their usual
 *   networks, IMAP clients polling, inbound mail around the clock;
 * - a newsletter account (news@) steady at ~15 msgs/h, with its monthly
 *   peak (twice that) from 09:00 to 10:00 — decoy;
 * - hr@ announcing to 300 colleagues (internal recipients) at 11:00 — decoy;
 * - a user mistyping the password twice at 12:30, then logging in — decoy;
 * - password spraying from one IP over 25 accounts at 13:10;
 * - at 14:00, a stolen password: the spammer logs in from abroad and sends
 *   ~120 messages as random@yahoo.com.tw from a handful of botnet IPs
 *   (the case floodgate was built for).
 *
 * No DNS is needed: the lock comes from passive signals (forged sender,
 * volume, new / many networks).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as S from './scenarios.js';

export const DEMO_DAY = Date.UTC(2026, 10, 27, 0, 0, 0);
export const DEMO_VICTIM = 'lucas@example.com';
export const DEMO_FLOOD_START = Date.UTC(2026, 10, 27, 14, 0, 0);
export const DEMO_FLOOD_IPS = ['41.203.18.77', '102.89.34.12', '197.210.53.9', '154.120.67.201', '105.112.44.18'];
export const DEMO_SPRAY_IP = '45.155.205.99';
export const DEMO_DECOYS = { announcement: 'hr@example.com', newsletter: 'news@example.com', typo: 'emma@example.com' };

export function buildDemoLines(): string[] {
  const { HOUR, MIN } = S;
  const log = new S.ScenarioLog(2026);
  const users = S.users(24, 11);
  const victim = users.find((u) => u.account === DEMO_VICTIM)!;
  const typo = users.find((u) => u.account === DEMO_DECOYS.typo)!;
  const hr: S.User = { account: DEMO_DECOYS.announcement, ip: '93.184.20.17', rate: 0.6 };
  const end = DEMO_DAY + 24 * HOUR;
  S.background(log, { start: DEMO_DAY, end, users: [...users, hr], inboundPerHour: 12 });
  // The victim's mail client (Thunderbird) polls IMAP every ~10 minutes from the office.
  for (let t = DEMO_DAY + 7 * HOUR; t < DEMO_DAY + 19 * HOUR; t += 10 * MIN + log.rng.int(60_000)) S.imapLogin(log, t, victim.account, victim.ip);

  S.newsletter(log, { account: DEMO_DECOYS.newsletter, ip: '93.184.20.40', start: DEMO_DAY, end, perHour: 15, rcptsPerMsg: 4, peak: { from: DEMO_DAY + 9 * HOUR, to: DEMO_DAY + 10 * HOUR, factor: 2 } });
  S.announcement(log, { account: hr.account, ip: hr.ip, start: DEMO_DAY + 11 * HOUR, recipients: S.staff(300) });
  S.passwordTypo(log, { account: typo.account, ip: typo.ip, start: DEMO_DAY + 12 * HOUR + 30 * MIN, failures: 2, to: 'orders@acme-supplies.de' });
  S.passwordSpray(log, { ip: DEMO_SPRAY_IP, accounts: [...users.slice(0, 15).map((u) => u.account), ...S.staff(10)], start: DEMO_DAY + 13 * HOUR + 10 * MIN, paceMs: 5000 });
  S.forgedSenderFlood(log, { account: victim.account, ips: DEMO_FLOOD_IPS, start: DEMO_FLOOD_START, count: 120, paceMs: 8000 });
  return log.render();
}

export function main(out = resolve(dirname(fileURLToPath(import.meta.url)), '../../demo/zimbra-day.log')): { path: string; lines: number; bytes: number } {
  const lines = buildDemoLines();
  const text = lines.join('\n') + '\n';
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, text);
  const r = { path: out, lines: lines.length, bytes: Buffer.byteLength(text) };
  process.stdout.write(JSON.stringify(r) + '\n');
  return r;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv[2]);
