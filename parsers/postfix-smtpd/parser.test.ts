import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { EventOf } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';
import type { Event } from '../../src/core/events.js';
import { eventsOf, parseText } from '../../test/helpers/parse.js';
import { postfixSmtpdParser } from './parser.js';
import { classifyReply } from './reject.js';

const P = 'Nov 27 10:00:01 mail postfix/smtpd[1234]: ';
const SUB = 'Nov 27 10:00:01 mail postfix/submission/smtpd[1234]: ';

function one<K extends Event['kind']>(line: string, kind: K): EventOf<K> {
  const evs = eventsOf(line);
  expect(evs).toHaveLength(1);
  expect(evs[0]!.kind).toBe(kind);
  return evs[0] as EventOf<K>;
}

function reject(reply: string, action = 'reject', stage = 'RCPT'): EventOf<'smtp.reject'> {
  return one(`${P}NOQUEUE: ${action}: ${stage} from unknown[192.0.2.1]: ${reply}; from=<a@x.example> to=<b@y.example> proto=ESMTP helo=<h>`, 'smtp.reject');
}

describe('postfix-smtpd: reject classification', () => {
  const cases: Array<[string, string, string?]> = [
    ['554 5.7.1 <b@y.example>: Relay access denied', 'relay-denied'],
    ['554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org', 'rbl', 'zen.spamhaus.org'],
    ['554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using b.barracudacentral.org; http://x/q?ip=192.0.2.1', 'rbl', 'b.barracudacentral.org'],
    ['550 5.7.1 Service unavailable; client [192.0.2.1] blocked using bl.spamcop.net', 'rbl', 'bl.spamcop.net'],
    ['550 5.7.23 <b@y.example>: Recipient address rejected: Message rejected due to: SPF fail - not authorized. Please see http://www.openspf.net/Why?s=mfrom;id=a@x.example;ip=192.0.2.1;r=<UNKNOWN>', 'spf'],
    ['450 4.1.8 <a@x.example>: Sender address rejected: Domain not found', 'sender'],
    ['553 5.7.1 <a@x.example>: Sender address rejected: not owned by user alice@example.com', 'sender'],
    ['550 5.1.1 <b@y.example>: Recipient address rejected: User unknown in virtual mailbox table', 'recipient'],
    ['550 5.1.1 <b@y.example>: User unknown in local recipient table', 'recipient'],
    ['504 5.5.2 <h>: Helo command rejected: need fully-qualified hostname', 'helo'],
    ['450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.1]', 'client'],
    ['450 4.2.0 <b@y.example>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/y.example.html', 'policy'],
    ['554 5.7.1 <b@y.example>: Recipient address rejected: Rejected by policy service', 'policy'],
    ['552 5.3.4 Message size exceeds fixed limit', 'size'],
    ['452 4.5.3 Error: too many recipients', 'rate'],
    ['421 4.7.0 mail.example.com Error: too many connections from 192.0.2.1', 'rate'],
    ['450 4.7.1 <a@x.example>: Sender address rejected: You are sending too many emails', 'rate'],
    ['554 5.5.1 <DATA>: Data command rejected: Improper use of SMTP command pipelining', 'protocol'],
    ['554 5.7.1 Something else entirely', 'other'],
  ];
  for (const [reply, category, list] of cases) {
    it(`${category}: ${reply.slice(0, 60)}`, () => {
      const e = reject(reply);
      expect(e.category).toBe(category);
      if (list !== undefined) expect(e.list).toBe(list);
      else expect('list' in e).toBe(false);
      expect(e.from).toBe('a@x.example');
      expect(e.to).toBe('b@y.example');
      expect(e.helo).toBe('h');
      expect(e.proto).toBe('ESMTP');
    });
  }

  it('milter-reject is milter whatever the text says', () => {
    const e = one(`${P}1A2B3C4D5E: milter-reject: END-OF-MESSAGE from mx.example[192.0.2.2]: 5.7.1 Relay access denied; from=<a@x> to=<b@y> proto=ESMTP helo=<mx>`, 'smtp.reject');
    expect(e).toMatchObject({ category: 'milter', action: 'reject', stage: 'END-OF-MESSAGE', queueId: '1A2B3C4D5E', dsn: '5.7.1' });
    expect('code' in e).toBe(false);
  });

  it('maps the other actions', () => {
    expect(reject('<a@x.example>: Sender address triggers DISCARD action', 'discard').action).toBe('discard');
    expect(reject('<a@x.example>: Sender address triggers HOLD action', 'hold').action).toBe('hold');
    expect(reject('<a@x.example>: Sender address triggers FILTER smtp:[127.0.0.1]:10026', 'filter').action).toBe('filter');
    expect(reject('<b@y.example>: Recipient address triggers REDIRECT c@z', 'redirect').action).toBe('redirect');
    expect(reject('Suspicious', 'warn').action).toBe('warn');
    expect(reject('450 4.7.1 Client host rejected: cannot find your hostname, [192.0.2.1]', 'reject_warning').action).toBe('warn');
  });

  it('parses code, dsn, stage and the client of CONNECT-stage rejects without envelope fields', () => {
    const e = one(`${P}NOQUEUE: reject: CONNECT from unknown[192.0.2.114]: 554 5.7.1 <unknown[192.0.2.114]>: Client host rejected: Access denied; proto=SMTP`, 'smtp.reject');
    expect(e).toMatchObject({ stage: 'CONNECT', code: 554, dsn: '5.7.1', ip: '192.0.2.114', clientHost: 'unknown', proto: 'SMTP', category: 'client' });
    expect('from' in e || 'to' in e || 'helo' in e || 'queueId' in e).toBe(false);
  });

  it('keeps the null sender as an empty string', () => {
    const e = one(`${P}NOQUEUE: reject: RCPT from unknown[192.0.2.1]: 554 5.7.1 <b@y>: Relay access denied; from=<> to=<b@y> proto=ESMTP helo=<h>`, 'smtp.reject');
    expect(e.from).toBe('');
  });

  it('does not let a quoted recipient holding "; from=<" split the reply', () => {
    const e = one(`${P}NOQUEUE: reject: RCPT from unknown[192.0.2.1]: 550 5.1.1 <"x; from=<evil>"@y>: Recipient address rejected: User unknown; from=<$(reboot)@x.com> to=<"x; from=<evil>"@y> proto=ESMTP helo=<h>`, 'smtp.reject');
    expect(e.from).toBe('$(reboot)@x.com');
    expect(e.to).toBe('"x; from=<evil>"@y');
    expect(e.category).toBe('recipient');
  });

  it('classifyReply is exported for postscreen', () => {
    expect(classifyReply('x', true).category).toBe('milter');
  });
});

describe('postfix-smtpd: SASL failures', () => {
  it('LOGIN failure with the base64 Password: challenge', () => {
    const e = one(`${SUB}warning: unknown[203.0.113.66]: SASL LOGIN authentication failed: UGFzc3dvcmQ6`, 'auth');
    expect(e).toMatchObject({ source: 'postfix', protocol: 'smtp', outcome: 'failure', ip: '203.0.113.66', clientHost: 'unknown', method: 'LOGIN', reason: 'UGFzc3dvcmQ6', service: 'submission' });
    expect('account' in e).toBe(false);
  });

  it('takes sasl_username as the account and leaves the reason without it', () => {
    const e = one(`${SUB}warning: unknown[203.0.113.10]: SASL LOGIN authentication failed: (reason unavailable), sasl_username=postmaster@example.org`, 'auth');
    expect(e.account).toBe('postmaster@example.org');
    expect(e.reason).toBe('(reason unavailable)');
  });

  it('PLAIN with an empty reason omits reason; method is upper-cased', () => {
    const e = one(`${P}warning: mail.example[198.51.100.74]: SASL Plain authentication failed:`, 'auth');
    expect(e.method).toBe('PLAIN');
    expect('reason' in e).toBe(false);
  });

  it('client with a port', () => {
    const e = one(`${P}warning: unknown[192.0.2.237]:55729: SASL LOGIN authentication failed: authentication failure`, 'auth');
    expect(e.ip).toBe('192.0.2.237');
  });

  it('an auth backend outage is recognised without an event', () => {
    const { lines } = parseText(`${P}warning: unknown[1.1.1.1]: SASL LOGIN authentication failed: Connection lost to authentication server`);
    expect(lines[0]!.status).toBe(0);
    expect(lines[0]!.events).toHaveLength(0);
  });
});

describe('postfix-smtpd: sessions', () => {
  it('disconnect: authFailed true only when auth=N/M with N<M', () => {
    const d = (cmds: string) => one(`${P}disconnect from unknown[192.0.2.1] ${cmds}`, 'smtp.disconnect');
    expect(d('ehlo=1 auth=0/1 quit=1 commands=2/3').authFailed).toBe(true);
    expect(d('ehlo=1 auth=1/2 mail=1 commands=3/4').authFailed).toBe(true);
    expect(d('ehlo=1 auth=1 quit=1 commands=3').authFailed).toBe(false);
    const none = d('ehlo=1 quit=1 commands=2');
    expect('authFailed' in none).toBe(false);
    expect(none.commands).toBe('ehlo=1 quit=1 commands=2');
  });

  it('client= with every optional field', () => {
    const e = one(`${SUB}4C1D2E3F5B: client=host.example[2001:db8::17], sasl_method=PLAIN, sasl_username=bob@example.com, sasl_sender=other@example.com`, 'smtp.client');
    expect(e).toMatchObject({ queueId: '4C1D2E3F5B', ip: '2001:db8::17', clientHost: 'host.example', saslMethod: 'PLAIN', account: 'bob@example.com', saslSender: 'other@example.com', service: 'submission' });
  });

  it('client= from a content-filter re-injection', () => {
    const e = one('Nov 27 10:00:01 mail postfix/amavisd/smtpd[9]: 7D8E9F0A1B: client=localhost[127.0.0.1], orig_queue_id=4C1D2E3F5B, orig_client=unknown[192.0.2.5]', 'smtp.client');
    expect(e).toMatchObject({ service: 'amavisd', origQueueId: '4C1D2E3F5B', origClientIp: '192.0.2.5' });
    expect('account' in e).toBe(false);
  });

  it('multi-instance tags keep the daemon service', () => {
    expect(one('Nov 27 10:00:01 relay postfix-out/smtpd[9]: connect from a.example[10.0.0.1]', 'smtp.connect').service).toBe('smtpd');
  });

  it('rate-limit warnings become rate rejects', () => {
    const e = one(`${SUB}warning: Message delivery request rate limit exceeded: 334 from unknown[203.0.113.45] for service submission`, 'smtp.reject');
    expect(e).toMatchObject({ category: 'rate', stage: 'MAIL', ip: '203.0.113.45', action: 'reject' });
  });
});

describe('postfix-smtpd: robustness', () => {
  it('returns false for an unknown line', () => {
    const { lines } = parseText(`${P}something postfix never said`);
    expect(lines[0]!.status).toBe(1);
  });

  it('never throws on truncations of fixture lines', () => {
    const dir = join(import.meta.dirname, 'fixtures');
    const threw: string[] = [];
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.log'))) {
      for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
        const msg = line.slice(line.indexOf(']: ') + 3);
        for (let i = 0; i <= msg.length; i++) {
          const rec: LogRecord = { ts: 0, host: 'h', program: 'postfix/smtpd', pid: 1, message: msg.slice(0, i), file: 'f', offset: 0 };
          try {
            postfixSmtpdParser.parse(rec, []);
          } catch {
            threw.push(rec.message);
          }
        }
      }
    }
    expect(threw).toEqual([]);
  });
});
