// execRunner: argv reaches the program literally (no shell), stdin, exit
// codes, timeouts, the output cap, a missing program, and the child's environment.
import { describe, expect, it } from 'vitest';
import { FloodgateError } from '../../src/core/errors.js';
import { childEnv, execRunner } from '../../src/actions/index.js';
import { bin } from './helpers.js';

describe('execRunner', () => {
  it('passes arguments literally: nothing a shell would interpret is interpreted', async () => {
    const hostile = ['$(touch /tmp/fg-pwned)', '`id`', 'a; rm -rf /', '"quoted"', "'single'", '*', '$HOME', 'a\nb', '--help'];
    const r = await execRunner().run([bin('echo-argv'), ...hostile]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).argv).toEqual(hostile);
    expect(r.stderr).toBe('to stderr\n');
  });

  it('feeds stdin and reports the exit code', async () => {
    const r = await execRunner({ env: { FG_STANDIN_EXIT: '3' } }).run([bin('echo-argv')], { input: 'ABCDE1\nABCDE2\n' });
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout).stdin).toBe('ABCDE1\nABCDE2\n');
  });

  it('gives the child an allow-listed environment, not floodgate’s secrets', async () => {
    const base = { PATH: process.env.PATH, HOME: '/home/fg', FLOODGATE_ZIMBRA_ADMIN_PASSWORD: 'hunter2', AWS_SECRET_ACCESS_KEY: 'x', SSH_AUTH_SOCK: '/tmp/agent' };
    const r = await execRunner({ baseEnv: base, env: { ZIMBRA_HOME: '/opt/zimbra' } }).run([bin('echo-argv')]);
    const env = JSON.parse(r.stdout).env as Record<string, string>;
    expect(env['FLOODGATE_ZIMBRA_ADMIN_PASSWORD']).toBeUndefined();
    expect(env['AWS_SECRET_ACCESS_KEY']).toBeUndefined();
    expect(env).toMatchObject({ HOME: '/home/fg', SSH_AUTH_SOCK: '/tmp/agent', ZIMBRA_HOME: '/opt/zimbra' });
    expect(childEnv({ FOO: 'bar', LANG: 'C' })).toEqual({ LANG: 'C' });
  });

  it('kills a program that runs past its timeout', async () => {
    const t0 = Date.now();
    await expect(execRunner().run([bin('sleeper'), '10000'], { timeoutMs: 300 })).rejects.toMatchObject({ code: 'FG_ACTION_COMMAND_FAILED', message: expect.stringContaining('timed out after 300 ms') });
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('kills a program that prints more than the cap', async () => {
    await expect(execRunner({ maxOutputBytes: 1000 }).run([bin('sleeper'), '5000', '200000'])).rejects.toMatchObject({ code: 'FG_ACTION_COMMAND_FAILED', message: expect.stringContaining('more than 1000 bytes') });
  });

  it('reports a missing program as FG_ACTION_COMMAND_FAILED', async () => {
    const e = await execRunner()
      .run(['/nonexistent/zmprov', 'ga', 'a@b.c'])
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FloodgateError);
    expect(e).toMatchObject({ code: 'FG_ACTION_COMMAND_FAILED', message: 'cannot run /nonexistent/zmprov: not found' });
  });

  it('refuses an empty argv or NUL bytes before spawning', async () => {
    expect(() => execRunner().run([])).toThrow(FloodgateError);
    expect(() => execRunner().run([bin('echo-argv'), 'a\0b'])).toThrow(FloodgateError);
  });
});
