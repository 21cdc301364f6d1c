// The admin SOAP backend against a stand-in Zimbra on 127.0.0.1 that checks
// the XML it is sent (escaping included) and answers with canned envelopes.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Actuator, parseXml, xmlEscape, type ActionRecord } from '../../src/actions/index.js';

const PASSWORD = `p<a&ss"'>w0rd`;
const ENV = { FLOODGATE_ZIMBRA_ADMIN_PASSWORD: PASSWORD };

interface Seen {
  body: string;
  contentType: string | undefined;
}
let seen: Seen[] = [];
let status = 'active';
let expireNextToken = false;
let tokens = 0;
let server: Server;
let url: string;

const env = (inner: string) => `<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Header><context xmlns="urn:zimbra"/></soap:Header><soap:Body>${inner}</soap:Body></soap:Envelope>`;
const fault = (code: string, reason: string) =>
  env(`<soap:Fault><soap:Code><soap:Value>soap:Sender</soap:Value></soap:Code><soap:Reason><soap:Text>${reason}</soap:Text></soap:Reason><soap:Detail><Error xmlns="urn:zimbra"><Code>${code}</Code><Trace>qtp-1</Trace></Error></soap:Detail></soap:Fault>`);

function answer(body: string): [number, string] {
  const auth = /<AuthRequest xmlns="urn:zimbraAdmin"><name>([^<]*)<\/name><password>([^<]*)<\/password><\/AuthRequest>/.exec(body);
  if (auth) {
    // The password must arrive escaped exactly once.
    if (auth[1] !== 'admin@example.com' || auth[2] !== 'p&lt;a&amp;ss&quot;&apos;&gt;w0rd') return [500, fault('account.AUTH_FAILED', 'authentication failed for [admin@example.com]')];
    tokens++;
    return [200, env(`<AuthResponse xmlns="urn:zimbraAdmin"><authToken>tok-${tokens}</authToken><lifetime>43199998</lifetime></AuthResponse>`)];
  }
  const token = /<context xmlns="urn:zimbra"><authToken>([^<]+)<\/authToken>/.exec(body)?.[1];
  if (!token) return [500, fault('service.AUTH_REQUIRED', 'no valid authtoken present')];
  if (expireNextToken) {
    expireNextToken = false;
    return [500, fault('service.AUTH_EXPIRED', 'auth credentials have expired')];
  }
  const get = /<GetAccountRequest xmlns="urn:zimbraAdmin" applyCos="0" attrs="([^"]*)"><account by="name">([^<]*)<\/account><\/GetAccountRequest>/.exec(body);
  if (get) {
    const name = get[2] ?? '';
    if (name.startsWith('nosuch')) return [500, fault('account.NO_SUCH_ACCOUNT', `no such account: ${name}`)];
    const attrs: Record<string, string> = { zimbraAccountStatus: status, zimbraAuthTokenValidityValue: '7' };
    const as = (get[1] ?? '')
      .split(',')
      .filter((a) => attrs[a] !== undefined)
      .map((a) => `<a n="${a}">${attrs[a]}</a>`)
      .join('');
    return [200, env(`<GetAccountResponse xmlns="urn:zimbraAdmin"><account name="${name}" id="0b9f0e0c-1111-4c2d-9a57-${name.length.toString().padStart(12, '0')}">${as}</account></GetAccountResponse>`)];
  }
  const mod = /<ModifyAccountRequest xmlns="urn:zimbraAdmin" id="([0-9a-f-]+)">((?:<a n="[A-Za-z]+">[^<]*<\/a>)+)<\/ModifyAccountRequest>/.exec(body);
  if (mod) {
    const m = /<a n="zimbraAccountStatus">([^<]*)<\/a>/.exec(mod[2] ?? '');
    if (m) status = m[1] ?? status;
    return [200, env(`<ModifyAccountResponse xmlns="urn:zimbraAdmin"><account name="x" id="${mod[1]}"/></ModifyAccountResponse>`)];
  }
  return [500, fault('service.UNKNOWN_DOCUMENT', 'unknown document')];
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ body, contentType: req.headers['content-type'] });
      const [code, xml] = req.url === '/service/admin/soap' && req.method === 'POST' ? answer(body) : [404, 'not found'];
      res.writeHead(code, { 'content-type': 'application/soap+xml; charset=utf-8' });
      res.end(xml);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/service/admin/soap`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));
beforeEach(() => {
  seen = [];
  status = 'active';
  expireNextToken = false;
  tokens = 0;
});

function soapActuator(more: Record<string, unknown> = {}) {
  const records: ActionRecord[] = [];
  const logs: string[] = [];
  const actuator = new Actuator({
    config: { dryRun: false, backend: 'soap', soap: { url, adminUser: 'admin@example.com' }, ...more },
    audit: (r) => void records.push(r),
    env: ENV,
    log: (level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields)}`),
  });
  return { actuator, records, logs };
}

const requestNames = () => seen.map((s) => /<soap:Body><(\w+)/.exec(s.body)?.[1]);

describe('SOAP backend', () => {
  it('locks: AuthRequest → GetAccountRequest → ModifyAccountRequest with zimbraAccountStatus locked', async () => {
    const { actuator, records, logs } = soapActuator();
    const { lock } = await actuator.lock('Alice@Example.com', ['forged-sender']);
    expect(requestNames()).toEqual(['AuthRequest', 'GetAccountRequest', 'ModifyAccountRequest']);
    expect(seen.every((s) => s.contentType === 'application/soap+xml; charset=utf-8')).toBe(true);
    expect(seen[1]?.body).toContain('<context xmlns="urn:zimbra"><authToken>tok-1</authToken><nosession/></context>');
    expect(seen[1]?.body).toContain('<account by="name">alice@example.com</account>');
    expect(seen[2]?.body).toContain('<ModifyAccountRequest xmlns="urn:zimbraAdmin" id="0b9f0e0c-1111-4c2d-9a57-000000000017"><a n="zimbraAccountStatus">locked</a></ModifyAccountRequest>');
    for (const s of seen) expect(() => parseXml(s.body)).not.toThrow();
    expect(lock).toMatchObject({ ok: true, changed: true, backend: 'soap', data: { previousStatus: 'active' } });
    expect(lock.command).toBeUndefined();
    expect(lock.data?.['requests']).toEqual(['GetAccountRequest account(by=name)=alice@example.com attrs=zimbraAccountStatus', 'ModifyAccountRequest alice@example.com zimbraAccountStatus=locked']);
    expect(status).toBe('locked');
    // The admin password never reaches a record or a log line, raw or escaped.
    const all = JSON.stringify(records) + logs.join('\n');
    expect(all).not.toContain(PASSWORD);
    expect(all).not.toContain(xmlEscape(PASSWORD));
    expect(all).not.toContain('w0rd');
  });

  it('reuses the auth token, and unlocks a locked account', async () => {
    const { actuator } = soapActuator();
    await actuator.lock('alice@example.com', ['r']);
    const r = await actuator.unlock('alice@example.com', 'api:carol');
    expect(requestNames()).toEqual(['AuthRequest', 'GetAccountRequest', 'ModifyAccountRequest', 'GetAccountRequest', 'ModifyAccountRequest']);
    expect(seen[4]?.body).toContain('<a n="zimbraAccountStatus">active</a>');
    expect(r).toMatchObject({ ok: true, changed: true });
    expect(status).toBe('active');
  });

  it('renews an expired token once', async () => {
    const { actuator } = soapActuator();
    await actuator.lock('alice@example.com', ['r']);
    expireNextToken = true;
    const r = await actuator.unlock('alice@example.com', 'api:carol');
    expect(requestNames().slice(3)).toEqual(['GetAccountRequest', 'AuthRequest', 'GetAccountRequest', 'ModifyAccountRequest']);
    expect(seen[5]?.body).toContain('<authToken>tok-2</authToken>');
    expect(r.ok).toBe(true);
  });

  it('runs the follow-ups through ModifyAccountRequest', async () => {
    const { actuator } = soapActuator({ checkStatus: false, followUps: { forcePasswordChange: true, invalidateSessions: true } });
    const { followUps } = await actuator.lock('alice@example.com', ['r']);
    expect(followUps.map((r) => r.ok)).toEqual([true, true]);
    const mods = seen.map((s) => /<ModifyAccountRequest[^>]*>(.*)<\/ModifyAccountRequest>/.exec(s.body)?.[1]).filter(Boolean);
    expect(mods).toEqual(['<a n="zimbraAccountStatus">locked</a>', '<a n="zimbraPasswordMustChange">TRUE</a>', '<a n="zimbraAuthTokenValidityValue">8</a>']);
  });

  it('records a SOAP fault with its Zimbra code', async () => {
    const { actuator } = soapActuator();
    const { lock } = await actuator.lock('nosuch@example.com', ['r']);
    expect(lock).toMatchObject({ ok: false, error: { code: 'FG_ACTION_SOAP_FAILED' } });
    expect(lock.error?.message).toContain('account.NO_SUCH_ACCOUNT');
  });

  it('records a wrong password as a fault, without the password', async () => {
    const records: ActionRecord[] = [];
    const actuator = new Actuator({ config: { dryRun: false, backend: 'soap', soap: { url, adminUser: 'admin@example.com' } }, audit: (r) => void records.push(r), env: { FLOODGATE_ZIMBRA_ADMIN_PASSWORD: 'wrong-Secret-123' } });
    const { lock } = await actuator.lock('alice@example.com', ['r']);
    expect(lock.error?.message).toContain('account.AUTH_FAILED');
    expect(JSON.stringify(records)).not.toContain('wrong-Secret-123');
  });

  it('records an unreachable server', async () => {
    const { actuator } = soapActuator({ soap: { url: 'http://127.0.0.1:9/service/admin/soap', adminUser: 'admin@example.com' } });
    const { lock } = await actuator.lock('alice@example.com', ['r']);
    expect(lock).toMatchObject({ ok: false, error: { code: 'FG_ACTION_SOAP_FAILED' } });
    expect(lock.error?.message).toMatch(/cannot reach http:\/\/127\.0\.0\.1:9/);
  });

  it('dry-run sends nothing and records the requests it would make', async () => {
    const { actuator } = soapActuator({ dryRun: true });
    const { lock } = await actuator.lock('alice@example.com', ['r']);
    expect(seen).toEqual([]);
    expect(lock).toMatchObject({ dryRun: true, ok: true, data: { requests: ['GetAccountRequest account(by=name)=alice@example.com attrs=zimbraAccountStatus', 'ModifyAccountRequest alice@example.com zimbraAccountStatus=locked'] } });
  });

  it('hostile names never reach the server', async () => {
    const { actuator } = soapActuator();
    const { lock } = await actuator.lock('a<b>@x.com', ['r']);
    expect(seen).toEqual([]);
    expect(lock.error?.code).toBe('FG_ACTION_INVALID_ACCOUNT');
  });

  it('requires https except to loopback, and an admin password when not in dry-run', () => {
    expect(() => new Actuator({ config: { backend: 'soap', soap: { url: 'http://mail.example.com:7071/service/admin/soap', adminUser: 'a@b.c' } }, audit: () => {} })).toThrow(/actions\.soap\.url: must be https/);
    expect(() => new Actuator({ config: { dryRun: false, backend: 'soap', soap: { adminUser: 'a@b.c' } }, audit: () => {}, env: {} })).toThrow(/FLOODGATE_ZIMBRA_ADMIN_PASSWORD/);
    expect(() => new Actuator({ config: { backend: 'soap' }, audit: () => {} })).toThrow(/actions\.soap\.adminUser: is required/);
  });
});
