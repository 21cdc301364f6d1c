/**
 * A message the correlator lets go idle reaches detection up to its idle
 * timeout after its last line. Counted back at its last line's time, it
 * lands in the account's windows as they were when last written, unless a
 * sweep dropped them meanwhile; and whether a sweep did depends on the
 * other keys of the store: standalone's one store against a partition's in
 * distributed mode (found on the bench log: one send-flood finding that
 * only the Kafka path made). Counted when it was let go (emittedTs), it
 * finds the same whatever else the store holds.
 */
import { describe, expect, it } from 'vitest';
import type { Message } from '../src/correlator/message.js';
import { DetectionEngine } from '../src/detect/engine.js';
import type { Finding } from '../src/detect/finding.js';
import { SiteKnowledge } from '../src/detect/site.js';
import { recipientFanoutDetector } from '../detectors/recipient-fanout.js';
import { sendFloodDetector } from '../detectors/send-flood.js';

const MIN = 60_000;
const T = Date.UTC(2026, 10, 27, 10, 0, 0);

let n = 0;
function message(user: string, lastTs: number, rcpts: number, emittedTs?: number): Message {
  const q = `Q${(n++).toString(16).toUpperCase().padStart(9, '0')}`;
  // the same addresses from one message to the next: the volume grows, not the fan-out
  const recipients = Array.from({ length: rcpts }, (_, i) => ({ address: `r${i}@d${i % 5}.example.net`, status: 'sent', ts: lastTs }));
  const m = {
    host: 'mx1',
    queueId: q,
    origin: 'smtp',
    saslUser: user,
    clientIp: '203.0.113.9',
    sender: user,
    nrcpt: rcpts,
    recipients,
    firstTs: lastTs - 1000,
    lastTs,
    hops: [{ queueId: q }],
    complete: emittedTs === undefined,
    end: emittedTs === undefined ? 'removed' : 'idle',
    src: { file: 'mail.log', offset: n * 100 },
  } as Message;
  if (emittedTs !== undefined) m.emittedTs = emittedTs;
  return m;
}

/**
 * The account sends 90 messages of 10 recipients within the hour (900:
 * below send-flood's ceiling of 1,000 an hour), then the stream moves on
 * 2½ h with `others` other accounts' messages, and the account's message of
 * 250 recipients from half past, let go idle, comes last.
 */
function run(others: number, emitted: boolean): Finding[] {
  const findings: Finding[] = [];
  const engine = new DetectionEngine({
    detectors: [sendFloodDetector, recipientFanoutDetector],
    site: new SiteKnowledge({ localDomains: ['example.com'] }),
    onFinding: (f) => findings.push(f),
  });
  // As the correlator gives a message that no queue manager line announced: a submission, then the message.
  const deliver = (m: Message) => {
    engine.onSubmission(m);
    engine.onMessage(m);
  };
  for (let i = 0; i < 90; i++) deliver(message('victim@example.com', T + i * 40_000, 10));
  const later = T + 150 * MIN;
  for (let i = 0; i < others; i++) deliver(message(`other${i}@example.com`, later, 1));
  deliver(message('victim@example.com', T + 30 * MIN, 250, emitted ? later : undefined));
  return findings.filter((f) => f.entity.id === 'victim@example.com');
}

describe('a message let go idle, hours after its last line', () => {
  it('finds the same whether or not the store had swept its account meanwhile', () => {
    // 3,000 other accounts: their writes sweep the structures; 1: none does
    const swept = run(3000, true);
    const unswept = run(1, true);
    expect(unswept.map((f) => [f.detector, f.severity, f.ts])).toEqual(swept.map((f) => [f.detector, f.severity, f.ts]));
    // counted when it was let go: alone in its windows, under every ceiling
    expect(swept).toEqual([]);
  });

  it('without the stamp, its old time finds different windows (what the stamp is for)', () => {
    const swept = run(3000, false);
    const unswept = run(1, false);
    expect(unswept.length).toBeGreaterThan(swept.length);
  });
});
