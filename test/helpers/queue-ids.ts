/**
 * What a scenario log's text itself ties to an account on one host, worked
 * out without floodgate's parsers: the queue ids of its SASL submissions,
 * their content-filter re-injections (amavis `queued_as`), and the envelope
 * senders of those submissions. The expected side of the hold tests.
 */
export interface TiedMail {
  ids: Set<string>;
  hops: Set<string>;
  senders: Set<string>;
}

export function tiedTo(lines: readonly string[], account: string): TiedMail {
  const ids = new Set<string>();
  const hops = new Set<string>();
  const senders = new Set<string>();
  for (const l of lines) {
    const sub = /smtpd\[\d+\]: ([0-9A-F]+): client=.*, sasl_username=(\S+)$/.exec(l);
    if (sub && sub[2] === account) ids.add(sub[1]!);
    const am = /Queue-ID: ([0-9A-F]+), .*queued_as: ([0-9A-F]+),/.exec(l);
    if (am && ids.has(am[1]!)) hops.add(am[2]!);
    const from = /qmgr\[\d+\]: ([0-9A-F]+): from=<([^>]*)>/.exec(l);
    if (from && ids.has(from[1]!)) senders.add(from[2]!.toLowerCase());
  }
  return { ids, hops, senders };
}
