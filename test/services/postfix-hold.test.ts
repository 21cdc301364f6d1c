/**
 * Hold and release against the real Postfix (Debian's 3.7, the private
 * instance scripts/services.sh runs): floodgate's actuator lists the queue
 * with the real `postqueue -j`, feeds queue ids to the real `postsuper -h -`
 * and `-H -` on stdin, and Postfix's own queue and log say what happened.
 * The stand-in tests fix the argv; this one proves the real programs agree.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Actuator, type ActionRecord, type QueuedMessage } from '../../src/actions/index.js';
import type { Event } from '../../src/core/events.js';
import { ZoneClock } from '../../src/envelope/zone.js';
import { parseFiles } from '../../src/pipeline/parse-files.js';
import { POSTFIX_CONFIG_DIR, postfixQueue, serviceCtl } from './helpers/services.js';

const dir = POSTFIX_CONFIG_DIR;
const env = { ...process.env, MAIL_CONFIG: dir };
const postqueue = (): QueuedMessage[] => {
  const listing = postfixQueue();
  expect(listing.malformed).toBe(0);
  return listing.messages;
};
/**
 * Submits through the real sendmail (postdrop → pickup → cleanup → qmgr) and
 * waits until the mail sits in the deferred queue (its relay refuses); returns
 * that queue id (the maildrop file had another).
 */
function submit(sender: string, rcpt: string): string {
  const before = new Set(postqueue().map((m) => m.queueId));
  execFileSync('/usr/sbin/sendmail', ['-C', dir, '-f', sender, rcpt], { input: `From: ${sender}\nTo: ${rcpt}\nSubject: hold test\n\nhello\n` });
  let id: string | undefined;
  const t0 = Date.now();
  while (id === undefined) {
    id = postqueue().find((m) => !before.has(m.queueId) && m.sender === sender && m.queueName === 'deferred')?.queueId;
    if (id === undefined && Date.now() - t0 > 20_000) throw new Error(`Postfix did not queue mail from ${sender}`);
  }
  return id;
}

describe('hold and release on the real Postfix queue', () => {
  let logStart = 0;
  beforeAll(async () => {
    await serviceCtl('up', 'postfix');
    execFileSync('/usr/sbin/postsuper', ['-d', 'ALL'], { env, stdio: 'ignore' }); // a clean queue
    try {
      logStart = statSync(join(dir, 'maillog')).size;
    } catch {
      logStart = 0;
    }
  }, 300_000);

  it("holds the account's mail by its address, a sender it forged and a queue id; nothing else; releases exactly that", async () => {
    const own = [submit('alice@example.com', 'x1@example.net'), submit('Alice@Example.com', 'x2@example.net')];
    const forged = submit('sales@yahoo.com.tw', 'x3@example.net');
    const byId = submit('r4nd0m@yahoo.com.tw', 'x4@example.net');
    const others = [submit('bob@example.com', 'y1@example.net'), submit('y7q@yahoo.com.tw', 'y2@example.net')];
    const mine = [...own, forged, byId].sort();

    const records: ActionRecord[] = [];
    const actuator = new Actuator({
      config: { dryRun: false, queue: { postqueuePath: '/usr/sbin/postqueue', postsuperPath: '/usr/sbin/postsuper', prefix: ['/usr/bin/env', `MAIL_CONFIG=${dir}`] } },
      audit: (r) => void records.push(r),
    });
    const hold = await actuator.hold('alice@example.com', { senders: ['SALES@yahoo.com.tw'], queueIds: [byId, 'not-an-id;rm'], by: 'test' });
    expect(hold, JSON.stringify(hold)).toMatchObject({ action: 'hold', ok: true, changed: true, dryRun: false, data: { ignoredQueueIds: 1 } });
    expect((hold.data!.queueIds as string[]).sort()).toEqual(mine);
    const q = postqueue();
    expect(q.filter((m) => m.queueName === 'hold').map((m) => m.queueId).sort()).toEqual(mine);
    for (const id of others) expect(q.find((m) => m.queueId === id)?.queueName).toBe('deferred');

    // Held already: nothing run again.
    const again = await actuator.hold('alice@example.com', { senders: ['sales@yahoo.com.tw'], queueIds: [byId] });
    expect(again).toMatchObject({ ok: true, changed: false });
    expect(again.detail).toContain('4 already on hold');

    const release = await actuator.release('alice@example.com', { queueIds: hold.data!.queueIds as string[], by: 'test' });
    expect(release).toMatchObject({ action: 'release', ok: true, changed: true });
    const after = postqueue();
    expect(after.filter((m) => m.queueName === 'hold')).toEqual([]);
    for (const id of [...mine, ...others]) expect(after.find((m) => m.queueId === id)?.queueName, id).toBe('deferred');

    // Postfix's own log of it, through floodgate's parsers: each id placed on hold once and released once, every line known.
    const tail = readFileSync(join(dir, 'maillog')).subarray(logStart);
    const events: Event[] = [];
    const file = join(dir, 'maillog.tail');
    execFileSync('/bin/sh', ['-c', 'cat > "$1"', 'sh', file], { input: tail });
    const r = await parseFiles([file], { zone: new ZoneClock('UTC'), onEvent: (e) => events.push(e) });
    expect(r.stats.unknown).toBe(0);
    const ps = events.filter((e): e is Extract<Event, { kind: 'postsuper' }> => e.kind === 'postsuper' && e.queueId !== undefined);
    expect(ps.filter((e) => e.action === 'hold').map((e) => e.queueId).sort()).toEqual(mine);
    expect(ps.filter((e) => e.action === 'released').map((e) => e.queueId).sort()).toEqual(mine);
  }, 120_000);
});
