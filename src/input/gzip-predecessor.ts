/**
 * A rotated log that was compressed while floodgate was down (logrotate's
 * `compress` without `delaycompress`, Postfix's `postfix logrotate`, which
 * gzips at once): resuming must finish it from the stored offset, so its
 * content is checked against the stored head fingerprint by inflating only
 * the first bytes, and only on a match inflated whole into a temporary file
 * that is unlinked as soon as it is open (the descriptor keeps it readable
 * and the space goes back when it is closed). Disk, not memory: a day's log
 * can be gigabytes inflated.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

/** sha1 of the first `n` inflated bytes, or null if there are fewer or the file is not gzip. */
export async function inflatedHeadHash(path: string, n: number): Promise<string | null> {
  const src = createReadStream(path);
  const gunzip = createGunzip();
  const chunks: Buffer[] = [];
  let got = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      gunzip.on('data', (c: Buffer) => {
        chunks.push(c);
        got += c.length;
        if (got >= n) resolve();
      });
      gunzip.on('end', resolve);
      gunzip.on('error', reject);
      src.on('error', reject);
      src.pipe(gunzip);
    });
  } catch {
    return null;
  } finally {
    src.destroy();
    gunzip.destroy();
  }
  if (got < n) return null;
  return createHash('sha1').update(Buffer.concat(chunks).subarray(0, n)).digest('hex');
}

/** The file inflated into an unlinked temporary file, open for reading. */
export async function openInflated(path: string): Promise<FileHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'floodgate-inflate-'));
  const tmp = join(dir, 'log');
  try {
    await pipeline(createReadStream(path), createGunzip(), createWriteStream(tmp, { mode: 0o600 }));
    return await open(tmp, 'r');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
