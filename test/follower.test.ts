import { appendFileSync, closeSync, copyFileSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Follower, type FollowerOptions, type FollowLine, type FollowPosition, type RotateInfo } from '../src/input/follower.js';

const root = mkdtempSync(join(tmpdir(), 'fg-follow-'));
const fresh = () => mkdtempSync(join(root, 'case-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const running: Follower[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((f) => f.stop()));
});

async function until(cond: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Run {
  f: Follower;
  lines: string[];
  got: FollowLine[];
  positions: FollowPosition[];
  rotations: RotateInfo[];
  errors: Error[];
}

function follow(path: string, opts: Partial<FollowerOptions> = {}): Run {
  const run: Run = { f: undefined as unknown as Follower, lines: [], got: [], positions: [], rotations: [], errors: [] };
  run.f = new Follower(path, {
    pollMs: 20,
    onRotate: (i) => run.rotations.push(i),
    onError: (e) => run.errors.push(e),
    ...opts,
    onLines: async (batch, pos) => {
      if (opts.onLines) await opts.onLines(batch, pos);
      run.got.push(...batch);
      run.lines.push(...batch.map((b) => b.line));
      run.positions.push(pos);
    },
  });
  running.push(run.f);
  return run;
}

const L = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix} line ${i} ${'x'.repeat(i % 17)}`);
const text = (lines: string[]) => lines.map((l) => `${l}\n`).join('');

/** Writes `lines` to a new file at `path`, follows it to their end, stops; returns the position to resume from. */
async function followedThenStopped(path: string, lines: string[]): Promise<FollowPosition> {
  writeFileSync(path, text(lines));
  const first = follow(path, { maxBatchLines: 10 });
  await first.f.start();
  await until(() => first.lines.length === lines.length);
  await first.f.stop();
  return first.f.position();
}

/** Every delivered line is found at its offset in `file`. */
function checkOffsets(file: string, got: FollowLine[]) {
  const buf = readFileSync(file);
  for (const g of got) {
    if (g.offset > 0) expect(buf[g.offset - 1]).toBe(10);
    let end = buf.indexOf(10, g.offset);
    if (end < 0) end = buf.length;
    if (buf[end - 1] === 13) end--;
    expect(buf.toString('utf8', g.offset, end)).toBe(g.line);
  }
}

describe('Follower', () => {
  for (const watch of [true, false]) {
    it(`follows appended lines with byte offsets (watch ${watch})`, async () => {
      const dir = fresh();
      const path = join(dir, 'mail.log');
      writeFileSync(path, 'héllo\r\nsecond\n');
      const r = follow(path, { watch });
      await r.f.start();
      await until(() => r.lines.length === 2);
      appendFileSync(path, text(L('a', 100)));
      await until(() => r.lines.length === 102);
      appendFileSync(path, 'crlf\r\n');
      appendFileSync(path, Buffer.from([0x62, 0xff, 0x0a])); // invalid UTF-8
      await until(() => r.lines.length === 104);
      expect(r.lines).toEqual(['héllo', 'second', ...L('a', 100), 'crlf', 'b\uFFFD']);
      checkOffsets(path, r.got);
      const size = readFileSync(path).length;
      expect(r.f.position().offset).toBe(size);
      expect(r.positions.at(-1)!.offset).toBe(size);
      expect(r.f.stats()).toMatchObject({ linesDelivered: 104, bytesRead: size, rotations: 0, truncations: 0, oversized: 0 });
      expect(r.errors).toEqual([]);
    });
  }

  it('delivers a partial line only once its newline arrives', async () => {
    const path = join(fresh(), 'mail.log');
    writeFileSync(path, 'one\ntw');
    const r = follow(path);
    await r.f.start();
    await until(() => r.lines.length === 1);
    expect(r.f.position().offset).toBe(4);
    appendFileSync(path, 'o and');
    await sleep(80);
    expect(r.lines).toEqual(['one']);
    expect(r.f.position().offset).toBe(4);
    appendFileSync(path, ' more\nthree');
    await until(() => r.lines.length === 2);
    expect(r.lines).toEqual(['one', 'two and more']);
    expect(r.got[1]!.offset).toBe(4);
    expect(r.f.position().offset).toBe(Buffer.byteLength('one\ntwo and more\n'));
  });

  it('rename rotation: drains the old file (written after the rename) before reading the new one', async () => {
    const dir = fresh();
    const path = join(dir, 'mail.log');
    const writer = openSync(path, 'a'); // a logger keeping its descriptor across the rename
    writeSync(writer, text(L('old', 50)));
    const r = follow(path);
    await r.f.start();
    await until(() => r.lines.length === 50);
    renameSync(path, `${path}.1`);
    writeSync(writer, text(L('late', 10))); // old file, path missing
    await until(() => r.lines.length === 60, 3000, 'lines written while the path is missing');
    writeSync(writer, text(L('later', 5)) + 'unfinished'); // written just before the new file appears
    closeSync(writer);
    writeFileSync(path, text(L('new', 20)));
    await until(() => r.lines.length === 86);
    expect(r.lines).toEqual([...L('old', 50), ...L('late', 10), ...L('later', 5), 'unfinished', ...L('new', 20)]);
    expect(r.rotations.map((x) => x.kind)).toEqual(['rename']);
    expect(r.f.stats().rotations).toBe(1);
    appendFileSync(path, text(L('more', 3)));
    await until(() => r.lines.length === 89);
    checkOffsets(path, r.got.slice(66));
    checkOffsets(`${path}.1`, r.got.slice(0, 66));
    expect(r.f.position().offset).toBe(readFileSync(path).length);
    expect(r.errors).toEqual([]);
  });

  it('rename rotation, new file created empty before the writer reopens (postrotate HUP): no loss', async () => {
    const path = join(fresh(), 'mail.log');
    const writer = openSync(path, 'a');
    writeSync(writer, text(L('old', 5)));
    const r = follow(path);
    await r.f.start();
    await until(() => r.lines.length === 5);
    renameSync(path, `${path}.1`);
    writeFileSync(path, ''); // logrotate `create`
    await sleep(60); // several polls see the new, empty file
    writeSync(writer, text(L('before HUP', 4)));
    await until(() => r.lines.length === 9);
    closeSync(writer); // HUP: the writer reopens the path
    appendFileSync(path, text(L('after HUP', 2)));
    await until(() => r.lines.length === 11);
    expect(r.lines).toEqual([...L('old', 5), ...L('before HUP', 4), ...L('after HUP', 2)]);
    expect(r.rotations.map((x) => x.kind)).toEqual(['rename']);
  });

  it('rename rotation: lines written to the old file between our last read and the switch are drained first', async () => {
    const path = join(fresh(), 'mail.log');
    const writer = openSync(path, 'a');
    writeSync(writer, 'trigger\n');
    let done = false;
    const r = follow(path, {
      onLines: (batch) => {
        // while the follower waits on us, rotate: rename, the writer adds to the old file, the new file appears
        if (!done && batch.some((b) => b.line === 'trigger')) {
          done = true;
          renameSync(path, `${path}.1`);
          writeSync(writer, text(L('racing', 3)));
          writeFileSync(path, text(L('new', 2)));
        }
      },
    });
    await r.f.start();
    await until(() => r.lines.length === 6);
    closeSync(writer);
    expect(r.lines).toEqual(['trigger', ...L('racing', 3), ...L('new', 2)]);
  });

  it('stop() right after start() leaves nothing running', async () => {
    const path = join(fresh(), 'mail.log');
    writeFileSync(path, text(L('a', 3)));
    const r = follow(path);
    const started = r.f.start();
    await r.f.stop();
    await started;
    await sleep(50);
    expect(r.lines.length).toBeLessThanOrEqual(3);
    const again = new Follower(path, { onLines: () => undefined });
    await again.stop(); // never started: a no-op
  });

  it('copytruncate (file shrinks): restarts at 0 and follows the new content', async () => {
    const path = join(fresh(), 'mail.log');
    writeFileSync(path, text(L('before', 30)));
    const r = follow(path);
    await r.f.start();
    await until(() => r.lines.length === 30);
    copyFileSync(path, `${path}.1`);
    truncateSync(path, 0);
    appendFileSync(path, text(L('after', 3)));
    await until(() => r.lines.length === 33);
    expect(r.lines.slice(30)).toEqual(L('after', 3));
    expect(r.got[30]!.offset).toBe(0);
    expect(r.rotations.map((x) => x.kind)).toEqual(['truncate']);
    expect(r.f.stats().truncations).toBe(1);
    appendFileSync(path, text(L('then', 2)));
    await until(() => r.lines.length === 35);
    checkOffsets(path, r.got.slice(30));
  });

  it('copytruncate regrown past our offset before a poll: noticed by the head fingerprint', async () => {
    const path = join(fresh(), 'mail.log');
    writeFileSync(path, text(L('first', 5)));
    const r = follow(path, { pollMs: 150, watch: false });
    await r.f.start();
    await until(() => r.lines.length === 5);
    truncateSync(path, 0);
    appendFileSync(path, text(L('second generation', 40)));
    await until(() => r.lines.length === 45);
    expect(r.lines.slice(5)).toEqual(L('second generation', 40));
    expect(r.f.stats().truncations).toBe(1);
  });

  it('crash and restart from the last committed position: every line exactly once', async () => {
    const path = join(fresh(), 'mail.log');
    const all: string[] = [];
    const write = (k: number) => {
      const ls = L(`w${all.length}`, k);
      all.push(...ls);
      appendFileSync(path, text(ls));
    };
    write(500);

    const durable: string[] = []; // results committed with a position
    let committed: FollowPosition | undefined;
    for (let round = 0; round < 4; round++) {
      let pending: string[] = [];
      let batches = 0;
      const r = follow(path, {
        startAt: committed,
        maxBatchLines: 7,
        onLines: async (batch, pos) => {
          pending.push(...batch.map((b) => b.line));
          if (++batches % 3 === 0) {
            durable.push(...pending); // results and position in one transaction
            pending = [];
            committed = pos;
          }
          await sleep(1);
        },
      });
      await r.f.start();
      write(200);
      await until(() => batches >= 20);
      await r.f.stop(); // crash: `pending` is lost
      pending = [];
    }
    write(30);
    const r = follow(path, { startAt: committed, onLines: (b) => void durable.push(...b.map((x) => x.line)) });
    await r.f.start();
    await until(() => durable.length >= all.length);
    await sleep(60);
    expect(durable).toEqual(all);
    expect(r.rotations).toEqual([]);
  });

  it('restart after a rename rotation while stopped: finishes .1 from the position, then the new file', async () => {
    const path = join(fresh(), 'mail.log');
    writeFileSync(path, text(L('a', 40)));
    let committed: FollowPosition | undefined;
    const first = follow(path, { maxBatchLines: 10, onLines: (_b, pos) => void (committed = pos) });
    await first.f.start();
    await until(() => first.lines.length === 40);
    await first.f.stop();
    appendFileSync(path, text(L('b', 15)) + 'no newline at the end');
    renameSync(path, `${path}.1`);
    writeFileSync(path, text(L('c', 12)));

    const second = follow(path, { startAt: committed });
    await second.f.start();
    await until(() => second.lines.length === 28);
    expect(second.lines).toEqual([...L('b', 15), 'no newline at the end', ...L('c', 12)]);
    expect(second.rotations.map((x) => [x.kind, x.from])).toEqual([
      ['resume-rotated', `${path}.1`],
      ['rename', path],
    ]);
    checkOffsets(`${path}.1`, second.got.slice(0, 16));
    checkOffsets(path, second.got.slice(16));
  });

  for (const [name, rotatedAs] of [
    ['logrotate compress (no delaycompress)', '.1.gz'],
    ["Postfix's `postfix logrotate` (maillog_file)", '.20261208-040150.gz'],
  ] as const) {
    it(`restart after a rotation whose old file was gzipped while stopped (${name}): finished from the position, inflated`, async () => {
      const path = join(fresh(), 'mail.log');
      const committed = await followedThenStopped(path, L('a', 40));
      appendFileSync(path, text(L('b', 15)));
      // Rotated, then compressed: the plain old file is gone. A decoy: an older compressed log that is another file.
      writeFileSync(`${path}-20261201.gz`, gzipSync(text(L('older', 50))));
      writeFileSync(`${path}${rotatedAs}`, gzipSync(readFileSync(path)));
      rmSync(path);
      writeFileSync(path, text(L('c', 12)));

      const second = follow(path, { startAt: committed });
      await second.f.start();
      await until(() => second.lines.length === 27);
      await sleep(60);
      expect(second.lines).toEqual([...L('b', 15), ...L('c', 12)]);
      expect(second.rotations.map((x) => [x.kind, x.from])).toEqual([
        ['resume-rotated', `${path}${rotatedAs}`],
        ['rename', path],
      ]);
      // Offsets are the original file's (the inflated content), so positions stay comparable.
      expect(second.got[0]!.offset).toBe(committed.offset);
      checkOffsets(path, second.got.slice(15));
      expect(readdirSync(tmpdir()).filter((n) => n.startsWith('floodgate-inflate-'))).toEqual([]); // the inflated copy was unlinked
    });
  }

  it('a compressed file with another head, or corrupt, is not taken for the one we followed: resume-lost', async () => {
    const path = join(fresh(), 'mail.log');
    const pos = await followedThenStopped(path, L('a', 10));
    writeFileSync(`${path}.1.gz`, gzipSync(text(L('other', 10))));
    writeFileSync(`${path}-20261201.gz`, Buffer.from('not gzip at all'));
    rmSync(path);
    writeFileSync(path, text(L('z', 3)));
    const second = follow(path, { startAt: pos });
    await second.f.start();
    await until(() => second.lines.length === 3);
    expect(second.lines).toEqual(L('z', 3));
    expect(second.rotations.map((x) => x.kind)).toEqual(['resume-lost']);
    expect(second.errors).toEqual([]);
  });

  it('restart after a copytruncate while stopped: the copy (same fingerprint) is finished first', async () => {
    const path = join(fresh(), 'mail.log');
    writeFileSync(path, text(L('a', 20)));
    const first = follow(path);
    await first.f.start();
    await until(() => first.lines.length === 20);
    await first.f.stop();
    const committed = first.f.position();
    appendFileSync(path, text(L('b', 5)));
    copyFileSync(path, `${path}.1`);
    truncateSync(path, 0);
    appendFileSync(path, text(L('c', 100))); // same inode, larger than before
    const second = follow(path, { startAt: committed });
    await second.f.start();
    await until(() => second.lines.length === 105);
    expect(second.lines).toEqual([...L('b', 5), ...L('c', 100)]);
    expect(second.rotations.map((x) => x.kind)).toEqual(['resume-rotated', 'rename']);
  });

  it('restart on the same file resumes at the offset; an unknown file is read from 0 and reported', async () => {
    const path = join(fresh(), 'mail.log');
    writeFileSync(path, text(L('a', 10)));
    const first = follow(path);
    await first.f.start();
    await until(() => first.lines.length === 10);
    await first.f.stop();
    appendFileSync(path, text(L('b', 2)));
    const second = follow(path, { startAt: first.f.position() });
    await second.f.start();
    await until(() => second.lines.length === 2);
    await sleep(50);
    expect(second.lines).toEqual(L('b', 2));
    expect(second.rotations).toEqual([]);
    await second.f.stop();

    const pos = second.f.position();
    rmSync(path);
    writeFileSync(path, text(L('z', 3)));
    const third = follow(path, { startAt: pos });
    await third.f.start();
    await until(() => third.lines.length === 3);
    expect(third.lines).toEqual(L('z', 3));
    expect(third.rotations.map((x) => x.kind)).toEqual(['resume-lost']);
  });

  it('fromStart false starts at the end (the line being written is delivered whole)', async () => {
    const path = join(fresh(), 'mail.log');
    writeFileSync(path, text(L('old', 100)) + 'in prog');
    const r = follow(path, { fromStart: false });
    await r.f.start();
    await sleep(60);
    expect(r.lines).toEqual([]);
    appendFileSync(path, 'ress\nnew\n');
    await until(() => r.lines.length === 2);
    expect(r.lines).toEqual(['in progress', 'new']);
    checkOffsets(path, r.got);
  });

  it('skips and counts oversized lines, across chunk boundaries, keeping their neighbours', async () => {
    const path = join(fresh(), 'mail.log');
    const big = 'y'.repeat(10_000);
    writeFileSync(path, `before\n${big}\nafter\n`);
    const r = follow(path, { maxLineBytes: 100, chunkBytes: 4096 });
    await r.f.start();
    await until(() => r.lines.length === 2);
    appendFileSync(path, big.slice(0, 150));
    await sleep(60);
    appendFileSync(path, `${big.slice(0, 3000)}\n${'z'.repeat(100)}\n${'w'.repeat(101)}\nend\n`);
    await until(() => r.lines.length === 4);
    expect(r.lines).toEqual(['before', 'after', 'z'.repeat(100), 'end']);
    expect(r.f.stats().oversized).toBe(3);
    checkOffsets(path, r.got);
    expect(r.f.position().offset).toBe(readFileSync(path).length);
  });

  it('waits quietly for a file that does not exist yet', async () => {
    const path = join(fresh(), 'later.log');
    const r = follow(path);
    await r.f.start();
    await sleep(80);
    expect(r.errors).toEqual([]);
    writeFileSync(path, 'appeared\n');
    await until(() => r.lines.length === 1);
    expect(r.lines).toEqual(['appeared']);
    expect(r.errors).toEqual([]);
  });

  it('retries a batch whose onLines failed, and stop() waits for the batch in progress', async () => {
    const path = join(fresh(), 'mail.log');
    writeFileSync(path, text(L('a', 3)));
    let fail = 2;
    let inProgress = false;
    const r = follow(path, {
      onLines: async () => {
        if (fail-- > 0) throw new Error('database down');
        inProgress = true;
        await sleep(100);
        inProgress = false;
      },
    });
    await r.f.start();
    await until(() => inProgress, 3000, 'third attempt');
    await r.f.stop();
    expect(inProgress).toBe(false);
    expect(r.lines).toEqual(L('a', 3));
    expect(r.errors.map((e) => e.message)).toEqual(['database down']); // reported once, not spammed
  });
});
