/**
 * A minimal SMTP submission client for the real-Postfix tests: one session
 * per call, AUTH PLAIN, one message. Each command waits for its reply, and a
 * reply in another class than expected fails the call with the server's text.
 */
import { connect, type Socket } from 'node:net';

export interface Submission {
  host: string;
  port: number;
  user: string;
  password: string;
  from: string;
  to: string[];
  subject?: string;
}

class Replies {
  private buf = '';
  private waiters: ((line: string) => void)[] = [];
  private lines: string[] = [];
  constructor(sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\r\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 2);
        // Multi-line replies (250-...) end with the line whose code is followed by a space.
        if (/^\d{3} /.test(line) || !/^\d{3}-/.test(line)) {
          const w = this.waiters.shift();
          if (w) w(line);
          else this.lines.push(line);
        }
      }
    });
  }
  next(): Promise<string> {
    const l = this.lines.shift();
    return l !== undefined ? Promise.resolve(l) : new Promise((resolve) => this.waiters.push(resolve));
  }
}

/** Submits one message; resolves with the queue id from `250 2.0.0 Ok: queued as ID`. */
export async function submit(s: Submission): Promise<string> {
  const sock = connect({ host: s.host, port: s.port });
  sock.setTimeout(15_000, () => sock.destroy(new Error('SMTP timeout')));
  const failed = new Promise<never>((_, reject) => sock.once('error', reject));
  const replies = new Replies(sock);
  const step = async (cmd: string | undefined, want: RegExp): Promise<string> => {
    if (cmd !== undefined) sock.write(`${cmd}\r\n`);
    const line = await Promise.race([replies.next(), failed]);
    if (!want.test(line)) throw new Error(`SMTP ${cmd?.split(' ')[0] ?? 'greeting'}: ${line}`);
    return line;
  };
  try {
    await step(undefined, /^220 /);
    await step('EHLO floodgate-test-client', /^250 /);
    await step(`AUTH PLAIN ${Buffer.from(`\0${s.user}\0${s.password}`).toString('base64')}`, /^235 /);
    await step(`MAIL FROM:<${s.from}>`, /^250 /);
    for (const r of s.to) await step(`RCPT TO:<${r}>`, /^250 /);
    await step('DATA', /^354 /);
    const body = `From: <${s.from}>\r\nTo: ${s.to.map((r) => `<${r}>`).join(', ')}\r\nSubject: ${s.subject ?? 'test'}\r\n\r\nhello\r\n.`;
    const queued = await step(body, /^250 /);
    await step('QUIT', /^221 /);
    const id = /queued as ([0-9A-Za-z]+)/.exec(queued)?.[1];
    if (id === undefined) throw new Error(`no queue id in: ${queued}`);
    return id;
  } finally {
    sock.destroy();
  }
}
