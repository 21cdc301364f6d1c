/**
 * `floodgate parse`: log files → JSON lines of events (and, with
 * --messages, correlated messages) on stdout; a summary line on stderr.
 */
import { parseArgs } from 'node:util';
import { parseFiles } from '../pipeline/parse-files.js';
import { formatArg, intArg, usageError, yearArg, zoneArg } from './args.js';
import { JsonLinesWriter } from './output.js';
import { Progress } from './progress.js';

export const parseHelp = `Usage: floodgate parse [FILE...|-] [options]

Parse Postfix/Zimbra/amavis/Dovecot logs into JSON lines on stdout.
Files may be plain or gzip (detected by content); '-' or no file reads stdin.

Options:
  --format F        auto|rfc3164|iso|rfc5424|zimbra (default auto, per line)
  --tz ZONE         IANA zone of timestamps that carry no offset (default: $TZ or local)
  --year YYYY       year of the first RFC 3164 line (default: from the file's mtime)
  --host NAME       host for lines without one (Zimbra mailbox.log) (default localhost)
  --messages        also correlate lines into messages ({"type":"message",...})
  --messages-only   print messages but not events
  --stats           print only the summary (stderr)
  --max-line-bytes N  skip and count longer lines (default 65536)
  -h, --help        this help

Output: {"type":"event","kind":...,"ts":<epoch ms>,"host":...,"src":{"file","offset"},...}
and at the end on stderr {"type":"summary","lines":N,"events":N,"messages":N,"unknown":N,"malformed":N,...}.
Exit status: 0 ok, 1 an input could not be read (others were processed), 2 usage error.`;

export async function parseCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      format: { type: 'string' },
      tz: { type: 'string' },
      year: { type: 'string' },
      host: { type: 'string' },
      messages: { type: 'boolean', default: false },
      'messages-only': { type: 'boolean', default: false },
      stats: { type: 'boolean', default: false },
      'max-line-bytes': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(parseHelp + '\n');
    return 0;
  }
  const files = positionals.length > 0 ? positionals : ['-'];
  if (files.filter((f) => f === '-').length > 1) throw usageError("stdin ('-') can be read only once");
  const statsOnly = values.stats;
  const wantMessages = values.messages || values['messages-only'];
  const out = new JsonLinesWriter(process.stdout);
  const progress = new Progress(process.stderr);
  const printEvents = !statsOnly && !values['messages-only'];

  const result = await parseFiles(files, {
    format: formatArg(values.format),
    zone: zoneArg(values.tz),
    year: yearArg(values.year),
    defaultHost: values.host ?? 'localhost',
    maxLineBytes: intArg('max-line-bytes', values['max-line-bytes'], 256, 64 * 1024 * 1024),
    correlate: wantMessages,
    onEvent: printEvents ? (e) => out.write({ type: 'event', ...e }) : undefined,
    onMessage: wantMessages && !statsOnly ? (m) => out.write({ type: 'message', ...m }) : undefined,
    onProgress: (file, bytes, total) => progress.update(file, bytes, total),
    onInputError: (file, err) => {
      progress.clear();
      process.stderr.write(`floodgate: ${file}: ${err.message} [${err.code}]\n`);
    },
  });
  progress.clear();
  await out.end();
  const s = result.stats;
  const c = result.correlator?.stats;
  const summary = {
    type: 'summary',
    lines: s.lines,
    events: s.events,
    messages: s.messages,
    unknown: s.unknown,
    malformed: s.malformed,
    oversized: s.oversized,
    unclaimed: s.unclaimed,
    parserErrors: s.parserErrors,
    bytes: result.bytes,
    inputErrors: result.inputErrors,
    unknownByProgram: s.unknownByProgram,
    unclaimedByProgram: s.unclaimedByProgram,
    ...(c ? { correlator: { peakOpen: c.peakOpen, shed: c.shed, expiredIdle: c.expiredIdle, linked: c.linked } } : {}),
  };
  process.stderr.write(JSON.stringify(summary) + '\n');
  return result.inputErrors > 0 ? 1 : 0;
}
