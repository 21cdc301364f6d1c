// Webhooks against receivers on 127.0.0.1 that verify the HMAC signature
// themselves: retries with backoff, no retry on 4xx, the outbox keeping what
// could not be delivered until retryPending() does, and the three formats.
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Actuator, MemoryOutbox, verifySignature, type ActionRecord, type ActuatorOptions, type Notification } from '../../src/actions/index.js';

const SECRET = 'whsec_0123456789abcdef-NEVER-LOG';

interface Received {
  url: string;
  body: string;
  headers: IncomingMessage['headers'];
  signatureOk: boolean;
}

/** A receiver that checks the signature with its own HMAC code, then answers with `respond(n)` for the n-th request (1-based). */
async function receiver(respond: (n: number) => number | [number, Record<string, string>], port = 0) {
  const got: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const ts = String(req.headers['x-floodgate-timestamp'] ?? '');
      const expected = `sha256=${createHmac('sha256', SECRET).update(`${ts}.${body}`).digest('hex')}`;
      got.push({ url: req.url ?? '', body, headers: req.headers, signatureOk: req.headers['x-floodgate-signature'] === expected });
      const r = respond(got.length);
      const [code, headers] = Array.isArray(r) ? r : [r, {}];
      res.writeHead(code, { 'content-type': 'text/plain', ...headers });
      res.end(code < 300 ? 'ok' : 'nope');
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const p = (server.address() as AddressInfo).port;
  servers.push(server);
  return { got, port: p, url: (path = '/hook') => `http://127.0.0.1:${p}${path}`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => (s.listening ? s.close(() => r()) : r()))));
});

function webhookActuator(targets: unknown[], more: Partial<ActuatorOptions> & { webhooks?: Record<string, unknown> } = {}) {
  const records: ActionRecord[] = [];
  const logs: string[] = [];
  const sleeps: number[] = [];
  const outbox = new MemoryOutbox();
  const { webhooks, ...rest } = more;
  const actuator = new Actuator({
    config: { webhooks: { targets, ...webhooks } } as ActuatorOptions['config'],
    audit: (r) => void records.push(r),
    env: { FG_TEST_WEBHOOK_SECRET: SECRET },
    sleep: async (ms) => void sleeps.push(ms),
    random: () => 0.5,
    now: () => 1_700_000_000_000,
    log: (level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields)}`),
    outbox,
    ...rest,
  });
  return { actuator, records, logs, sleeps, outbox };
}

const note: Notification = {
  event: 'lock',
  ts: 1_700_000_000_000,
  summary: 'locked alice@example.com: 412 forged senders in 5 min from 203.0.113.9 <script>',
  account: 'alice@example.com',
  severity: 'critical',
  dryRun: false,
  reasons: ['forged-sender: 412 distinct senders', 'new-network: 203.0.113.9 (AS4134)'],
};

describe('webhook delivery', () => {
  it('retries 503 with exponential backoff and jitter, signs every attempt, ends delivered', async () => {
    const rx = await receiver((n) => (n <= 2 ? 503 : 200));
    const { actuator, records, sleeps, outbox } = webhookActuator([{ name: 'soc', url: rx.url(), format: 'generic', secretEnv: 'FG_TEST_WEBHOOK_SECRET' }]);
    const r = await actuator.notify(note);
    expect(rx.got).toHaveLength(3);
    expect(rx.got.every((g) => g.signatureOk)).toBe(true);
    expect(rx.got.every((g) => verifySignature(SECRET, String(g.headers['x-floodgate-timestamp']), g.body, String(g.headers['x-floodgate-signature'])))).toBe(true);
    expect(rx.got[0]?.headers['x-floodgate-timestamp']).toBe('1700000000');
    // Same delivery id and same bytes on every attempt, so the receiver can dedupe.
    expect(new Set(rx.got.map((g) => g.headers['x-floodgate-delivery'])).size).toBe(1);
    expect(new Set(rx.got.map((g) => g.body)).size).toBe(1);
    // base 1000 · 2^(k−1) · (0.5 + 0.5/2)
    expect(sleeps).toEqual([750, 1500]);
    expect(r).toMatchObject({ action: 'webhook', ok: true, changed: true, backend: 'webhook', data: { deliveries: [{ target: 'soc', state: 'delivered', attempts: 3, lastStatus: 200 }] } });
    const id = (r.data?.['deliveries'] as Array<{ id: string }>)[0]?.id ?? '';
    expect(outbox.get(id)).toMatchObject({ state: 'delivered', attempts: 3, deliveredAt: 1_700_000_000_000 });
    expect(JSON.parse(rx.got[0]?.body ?? '')).toMatchObject({ source: 'floodgate', version: 1, event: 'lock', account: 'alice@example.com', reasons: note.reasons });
    expect(records).toEqual([r]);
  });

  it('does not retry a 400, and records it as failed', async () => {
    const rx = await receiver(() => 400);
    const { actuator, sleeps, outbox } = webhookActuator([{ name: 'soc', url: rx.url(), secret: SECRET }]);
    const r = await actuator.notify(note);
    expect(rx.got).toHaveLength(1);
    expect(sleeps).toEqual([]);
    expect(r).toMatchObject({ ok: false, error: { code: 'FG_WEBHOOK_FAILED' }, data: { deliveries: [{ state: 'failed', attempts: 1, retryable: false, lastStatus: 400, lastError: 'HTTP 400' }] } });
    expect(outbox.list(['failed'])).toHaveLength(1);
    // Not picked up again: the receiver refused it.
    expect(await actuator.retryPendingWebhooks()).toEqual([]);
    expect(rx.got).toHaveLength(1);
  });

  it('honours Retry-After on 429 (capped at maxDelayMs)', async () => {
    const rx = await receiver((n) => (n === 1 ? [429, { 'retry-after': '7' }] : 200));
    const { actuator, sleeps } = webhookActuator([{ name: 'soc', url: rx.url(), secret: SECRET }], { webhooks: { maxDelayMs: 5000 } });
    const r = await actuator.notify(note);
    expect(sleeps).toEqual([5000]);
    expect(r.ok).toBe(true);
  });

  it('keeps what a down receiver could not take, and retryPending() delivers it later: nothing lost', async () => {
    const probe = await receiver(() => 200);
    const port = probe.port;
    await probe.close();
    const { actuator, outbox, sleeps, records } = webhookActuator([{ name: 'soc', url: `http://127.0.0.1:${port}/hook`, secret: SECRET }], { webhooks: { maxAttempts: 3 } });
    const r = await actuator.notify(note);
    expect(sleeps).toHaveLength(2);
    expect(r).toMatchObject({ ok: false, error: { code: 'FG_WEBHOOK_FAILED' }, data: { deliveries: [{ state: 'failed', attempts: 3, retryable: true }] } });
    expect(String((r.data?.['deliveries'] as Array<{ lastError: string }>)[0]?.lastError)).toMatch(/network error: .*ECONNREFUSED/);
    const waiting = outbox.list(['pending', 'failed']);
    expect(waiting).toHaveLength(1);

    const rx = await receiver(() => 200, port);
    const retried = await actuator.retryPendingWebhooks();
    expect(retried).toMatchObject([{ state: 'delivered', attempts: 4 }]);
    expect(rx.got).toHaveLength(1);
    expect(rx.got[0]?.signatureOk).toBe(true);
    expect(rx.got[0]?.body).toBe(waiting[0]?.body);
    expect(outbox.list(['pending', 'failed'])).toEqual([]);
    expect(records).toHaveLength(1);
  });

  it('an entry left pending (e.g. by a crash before its first attempt) is delivered by retryPending()', async () => {
    const rx = await receiver(() => 200);
    const { actuator, outbox } = webhookActuator([{ name: 'soc', url: rx.url(), secret: SECRET }]);
    const [e] = await actuator.webhooks.enqueue(note);
    expect(outbox.get(e?.id ?? '')).toMatchObject({ state: 'pending', attempts: 0 });
    expect(await actuator.retryPendingWebhooks()).toMatchObject([{ state: 'delivered', attempts: 1 }]);
    expect(rx.got).toHaveLength(1);
  });

  it('retries a receiver that does not answer in time', async () => {
    let n = 0;
    const slow = createServer((_req, res) => {
      if (++n === 1) return; // never answers
      res.end('ok');
    });
    servers.push(slow);
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(slow.address() as AddressInfo).port}/hook`;
    const { actuator } = webhookActuator([{ name: 'soc', url }], { webhooks: { timeoutMs: 200 } });
    const r = await actuator.notify(note);
    expect(r).toMatchObject({ ok: true, data: { deliveries: [{ attempts: 2 }] } });
    slow.closeAllConnections();
  });

  it('never lets the secret or the target URL into records, outbox entries or logs', async () => {
    const rx = await receiver((n) => (n === 1 ? 500 : 200));
    const tokenPath = '/services/T0001/B0001/aUrlTokenThatIsACredential';
    const { actuator, records, logs, outbox } = webhookActuator([
      { name: 'slack', url: rx.url(tokenPath), format: 'slack', secretEnv: 'FG_TEST_WEBHOOK_SECRET' },
      { name: 'bad', url: `http://127.0.0.1:${rx.port}/x`, secret: `${SECRET}-2` },
    ]);
    await actuator.notify(note);
    await actuator.retryPendingWebhooks();
    const everything = JSON.stringify(records) + JSON.stringify(outbox.list(['pending', 'delivered', 'failed'])) + logs.join('\n') + JSON.stringify(actuator.config.webhooks.targets.map((t) => t.name));
    expect(everything).not.toContain(SECRET);
    expect(everything).not.toContain('aUrlTokenThatIsACredential');
    expect(logs.length).toBeGreaterThan(0);
  });
});

describe('formats', () => {
  it('slack: {text, blocks} with header, fields, reasons; mrkdwn escaped', async () => {
    const rx = await receiver(() => 200);
    const { actuator } = webhookActuator([{ name: 'slack', url: rx.url(), format: 'slack' }]);
    await actuator.notify(note);
    const body = JSON.parse(rx.got[0]?.body ?? '{}') as { text: string; blocks: Array<{ type: string; text?: { type: string; text: string }; fields?: Array<{ text: string }> }> };
    expect(rx.got[0]?.headers['x-floodgate-signature']).toBeUndefined();
    expect(body.text).toContain('floodgate: lock alice@example.com');
    expect(body.text).toContain('&lt;script&gt;');
    expect(body.blocks.map((b) => b.type)).toEqual(['header', 'section', 'section', 'section', 'context']);
    expect(body.blocks[0]?.text).toEqual({ type: 'plain_text', text: 'floodgate: lock alice@example.com' });
    expect(body.blocks[2]?.fields?.map((f) => f.text)).toEqual(['*Account*\nalice@example.com', '*Severity*\ncritical', '*Time*\n2023-11-14T22:13:20.000Z']);
    expect(body.blocks[3]?.text?.text).toBe('*Why*\n• forged-sender: 412 distinct senders\n• new-network: 203.0.113.9 (AS4134)');
  });

  it('teams: a message with one Adaptive Card attachment', async () => {
    const rx = await receiver(() => 200);
    const { actuator } = webhookActuator([{ name: 'teams', url: rx.url(), format: 'teams' }]);
    await actuator.notify({ ...note, dryRun: true });
    const body = JSON.parse(rx.got[0]?.body ?? '{}');
    expect(body).toMatchObject({
      type: 'message',
      attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', contentUrl: null, content: { type: 'AdaptiveCard', version: '1.4', $schema: 'http://adaptivecards.io/schemas/adaptive-card.json' } }],
    });
    const card = body.attachments[0].content.body as Array<{ type: string; text?: string; facts?: Array<{ title: string; value: string }> }>;
    expect(card.map((b) => b.type)).toEqual(['TextBlock', 'TextBlock', 'FactSet', 'TextBlock']);
    expect(card[0]?.text).toBe('floodgate: lock alice@example.com (dry run)');
    expect(card[2]?.facts?.[0]).toEqual({ title: 'Account', value: 'alice@example.com' });
  });

  it('notify with no targets is an ok no-op record', async () => {
    const { actuator, records } = webhookActuator([]);
    const r = await actuator.notify(note);
    expect(r).toMatchObject({ ok: true, changed: false, action: 'webhook' });
    expect(records).toHaveLength(1);
  });
});

describe('verifySignature', () => {
  it('rejects a tampered body, a wrong secret and a stale timestamp', () => {
    const ts = '1700000000';
    const body = '{"a":1}';
    const sig = `sha256=${createHmac('sha256', SECRET).update(`${ts}.${body}`).digest('hex')}`;
    expect(verifySignature(SECRET, ts, body, sig)).toBe(true);
    expect(verifySignature(SECRET, ts, '{"a":2}', sig)).toBe(false);
    expect(verifySignature('other-secret-0000', ts, body, sig)).toBe(false);
    expect(verifySignature(SECRET, ts, body, sig, { nowSeconds: 1700000000 + 301 })).toBe(false);
    expect(verifySignature(SECRET, ts, body, sig, { nowSeconds: 1700000000 + 10 })).toBe(true);
    expect(verifySignature(SECRET, ts, body, 'sha256=00')).toBe(false);
  });
});
