import { describe, expect, it } from 'vitest';
import { ParseStatus } from '../../src/core/dispatch.js';
import { eventsOf, parseText } from '../../test/helpers/parse.js';

const py = (msg: string) => `Nov 27 10:00:01 mail policyd-spf[3001]: ${msg}`;
const pl = (msg: string) => `Nov 27 10:00:01 mail postfix/policy-spf[4001]: ${msg}`;

describe('policyd-spf parser', () => {
  it('parses the Python daemon prepend line', () => {
    expect(
      eventsOf(py('prepend Received-SPF: Pass (mailfrom) identity=mailfrom; client-ip=1.2.3.4; helo=h.example; envelope-from=a@b.example; receiver=<UNKNOWN>')),
    ).toMatchObject([{ kind: 'spf', daemon: 'python', result: 'pass', ip: '1.2.3.4', helo: 'h.example', sender: 'a@b.example', identity: 'mailfrom' }]);
    const [e] = eventsOf(py('prepend Received-SPF: Pass (mailfrom) identity=mailfrom; client-ip=1.2.3.4; helo=h; envelope-from=a@b; receiver=<UNKNOWN>'));
    expect(e).not.toHaveProperty('receiver');
    expect(e).not.toHaveProperty('reason');
  });

  it('parses result-first and reject forms', () => {
    expect(eventsOf(py('Softfail; identity=mailfrom; client-ip=5.6.7.8; helo=x; envelope-from=c@d; receiver=r@e'))[0]).toMatchObject({
      result: 'softfail',
      receiver: 'r@e',
    });
    expect(
      eventsOf(py('550 5.7.23 Message rejected due to: SPF fail - not authorized. Please see https://x/?;identity=mailfrom;client-ip=9.9.9.9;helo=h;envelope-from=f@g;receiver=m'))[0],
    ).toMatchObject({ result: 'fail', ip: '9.9.9.9', sender: 'f@g', reason: 'not authorized' });
    expect(eventsOf(py('Temperror; identity=helo; client-ip=1.1.1.1; helo=t; envelope-from=a@b; receiver=c'))[0]).toMatchObject({
      result: 'temperror',
      identity: 'helo',
    });
  });

  it('parses the Perl daemon SPF lines and recognises its action lines', () => {
    expect(eventsOf(pl(": SPF pass (Mechanism 'ip4:1.2.3.4' matched): Envelope-from: a@b"))).toMatchObject([
      { daemon: 'perl', result: 'pass', sender: 'a@b', identity: 'mailfrom', reason: "Mechanism 'ip4:1.2.3.4' matched" },
    ]);
    expect(eventsOf(pl('3F2A1C0B4: SPF softfail (Mechanism \'~all\' matched): HELO-name: h.example'))).toMatchObject([
      { result: 'softfail', helo: 'h.example', identity: 'helo' },
    ]);
    for (const m of [': Policy action=DUNNO', 'handler sender_policy_framework: is decisive.', ': Policy action=PREPEND Received-SPF: pass (x) receiver=r; identity=mailfrom']) {
      const r = parseText(pl(m));
      expect(r.lines[0]!.status, m).toBe(ParseStatus.Recognised);
      expect(r.events).toEqual([]);
    }
  });

  it('keeps hostile senders as data and rejects unknown lines', () => {
    expect(eventsOf(py('Neutral; identity=mailfrom; client-ip=1.1.1.1; helo=h; envelope-from=$(reboot)@x; receiver=r'))[0]).toMatchObject({
      sender: '$(reboot)@x',
    });
    expect(parseText(py('Bogus; identity=mailfrom')).lines[0]!.status).toBe(ParseStatus.Unknown);
    expect(parseText(pl(': SPF bogus (x): Envelope-from: a@b')).lines[0]!.status).toBe(ParseStatus.Unknown);
    expect(parseText(py('ERROR: Could not match line "x"')).lines[0]!.status).toBe(ParseStatus.Recognised);
  });
});
