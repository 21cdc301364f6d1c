/**
 * The Postfix daemons and commands whose lines carry no detection signal
 * but must be recognised, so that they are not counted as unknown: master,
 * scache, tlsproxy, tlsmgr, verify, trivial-rewrite, postfix-script,
 * sendmail, postdrop, proxymap, showq, flush, postmap, postqueue, spawn,
 * and a few other commands.
 *
 * Any of their lines that starts with `warning:`, `fatal:`, `panic:`,
 * `error:`, `statistics:` or one of the known phrases below is recognised;
 * everything else is unknown. No events.
 */
import type { Event } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';
import type { Parser } from '../types.js';
import { isDiagnostic } from '../postfix-delivery/line.js';

/** Known phrases, by the daemon that logs them (matching does not depend on the daemon). */
const PHRASES = [
  // master
  'daemon started -- version ',
  'reload -- version ',
  'terminating on signal ',
  // tlsproxy (STARTTLS for postscreen)
  'CONNECT from ',
  'DISCONNECT ',
  'SSL_accept error from ',
  'TLS handshake failed',
  'lost connection with ',
  'Anonymous TLS connection established from ',
  'Trusted TLS connection established from ',
  'Untrusted TLS connection established from ',
  'Verified TLS connection established from ',
  'TLS connection established from ',
  // postfix-script
  'starting the Postfix mail system',
  'stopping the Postfix mail system',
  'refreshing the Postfix mail system',
  'waiting for the Postfix mail system to terminate',
  'the Postfix mail system is running',
  'the Postfix mail system is not running',
  'Postfix is running with backwards-compatible default settings',
  'Postfix is using backwards-compatible default settings',
  'See http://www.postfix.org/COMPATIBILITY_README.html',
  'To disable backwards compatibility use',
  'symlink leaves directory: ',
  'group or other writable: ',
  'not owned by ',
  'not owned by group ',
  'Mail system is down',
  // verify, postscreen-style cache maintenance
  'cache ',
] as const;

function isKnown(msg: string): boolean {
  if (isDiagnostic(msg) || msg.startsWith('statistics: ')) return true;
  for (const s of PHRASES) if (msg.startsWith(s)) return true;
  return false;
}

export const postfixMiscParser: Parser = {
  id: 'postfix-misc',
  programs: [
    'postfix/master',
    'postfix/scache',
    'postfix/tlsproxy',
    'postfix/tlsmgr',
    'postfix/verify',
    'postfix/trivial-rewrite',
    'postfix/postfix-script',
    // Older installs log the script under its own tag, without `postfix/`.
    'postfix-script',
    'postfix/sendmail',
    'postfix/postdrop',
    'postfix/proxymap',
    'postfix/showq',
    'postfix/flush',
    'postfix/postmap',
    'postfix/postalias',
    'postfix/postqueue',
    'postfix/postconf',
    'postfix/postkick',
    'postfix/spawn',
  ],
  parse(rec: LogRecord, _out: Event[]): boolean {
    return isKnown(rec.message);
  },
};
