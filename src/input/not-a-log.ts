/**
 * What an input is when it is not a log floodgate can read, from its first
 * bytes: a compression other than gzip (logrotate compresses with whatever
 * `compresscmd` says: bzip2, xz and zstd are common) or an archive (a tar of
 * /var/log sent for an incident, a .zip). Read as text they are binary
 * garbage: every line malformed, no finding, and nothing to say why.
 * Named, the user knows what to run instead.
 *
 * Each check needs a signature no log line can begin with (bytes outside
 * printable text, or a tar header whose checksum adds up), so a real log is
 * never refused.
 */

/** The signatures of compressed streams, at the start of the file. */
const compressed: readonly { name: string; magic: readonly number[]; tool: string }[] = [
  // "BZh", the block size 1-9, then the block magic (the digits of pi in BCD)
  { name: 'bzip2-compressed', magic: [0x42, 0x5a, 0x68, -1, 0x31, 0x41, 0x59, 0x26, 0x53, 0x59], tool: 'bzip2 -dc' },
  { name: 'xz-compressed', magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], tool: 'xz -dc' },
  { name: 'zstd-compressed', magic: [0x28, 0xb5, 0x2f, 0xfd], tool: 'zstd -dc' },
  { name: 'a zip archive', magic: [0x50, 0x4b, 0x03, 0x04], tool: 'unzip -p' },
  { name: 'a 7-Zip archive', magic: [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c], tool: '7z x -so' },
];

function startsWith(head: Uint8Array, magic: readonly number[]): boolean {
  if (head.length < magic.length) return false;
  for (let i = 0; i < magic.length; i++) {
    const m = magic[i]!;
    if (m === -1 ? head[i]! < 0x31 || head[i]! > 0x39 : head[i] !== m) return false;
  }
  return true;
}

/**
 * A POSIX or GNU tar header: `ustar` at byte 257, and the header checksum
 * (the sum of its 512 bytes, the checksum field counted as spaces) equal to
 * the octal number in that field.
 */
export function isTarHeader(b: Uint8Array): boolean {
  if (b.length < 512) return false;
  if (b[257] !== 0x75 || b[258] !== 0x73 || b[259] !== 0x74 || b[260] !== 0x61 || b[261] !== 0x72) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : b[i]!;
  const field = Buffer.from(b.subarray(148, 156)).toString('latin1').replace(/[\0 ]+$/, '').trim();
  return /^[0-7]{1,7}$/.test(field) && parseInt(field, 8) === sum;
}

/** What a tar archive (plain, or found inside gzip) is refused with. */
export const TAR_REFUSED = 'a tar archive (a .tar or .tar.gz): extract it and give floodgate the log files in it';

/**
 * Why `path` cannot be read as a log, judging by its first bytes (512 of
 * them when the file has that many: a tar header), or undefined when it may
 * be one.
 */
export function notALog(head: Uint8Array, path: string): string | undefined {
  if (isTarHeader(head)) return TAR_REFUSED;
  const shown = path === '-' ? 'FILE' : path;
  for (const c of compressed) {
    if (startsWith(head, c.magic)) return `${c.name}: floodgate reads plain and gzip files; decompress it into a pipe instead: ${c.tool} ${shown} | floodgate replay -`;
  }
  return undefined;
}
