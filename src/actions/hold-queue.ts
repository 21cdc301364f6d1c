/**
 * Holding an account's queued mail, so the spam already accepted does not
 * leave while the account is locked, and releasing it again.
 *
 *   list     [...prefix, postqueue, '-j']          JSON lines (Postfix ≥ 3.1)
 *   hold     [...prefix, postsuper, '-h', '-']     queue ids on stdin, one per line
 *   release  [...prefix, postsuper, '-H', '-']     the ids recorded by the hold
 *
 * Queue ids travel on stdin, never in argv or a shell, and each must match
 * [0-9A-Za-z]{5,24} (short hex ids and long `enable_long_queue_ids` ones).
 * A message is selected when its sender is the account or one of the
 * senders the policy saw it forge (case-insensitive), or its queue id was
 * named. Messages already in the hold queue are not held again. Malformed
 * postqueue lines are counted and skipped, never fatal.
 */
import { z } from 'zod';
import { FloodgateError } from '../core/errors.js';
import type { CommandRunner } from './runner.js';
import { stderrTail } from './zimbra-lock.js';

export const queueIdPattern = /^[0-9A-Za-z]{5,24}$/;

export function isQueueId(s: unknown): s is string {
  return typeof s === 'string' && queueIdPattern.test(s);
}

const postqueueLine = z.object({
  queue_name: z.string(),
  queue_id: z.string().regex(queueIdPattern),
  arrival_time: z.number().optional(),
  message_size: z.number().optional(),
  sender: z.string(),
  recipients: z.array(z.object({ address: z.string(), delay_reason: z.string().optional() }).loose()).default([]),
}).loose();

export interface QueuedMessage {
  queueName: string;
  queueId: string;
  arrivalTime?: number;
  size?: number;
  sender: string;
  recipients: string[];
}

export interface PostqueueListing {
  messages: QueuedMessage[];
  /** Lines that were not JSON or lacked the fields we need. */
  malformed: number;
}

/** Parses `postqueue -j` output; never throws. */
export function parsePostqueueJson(text: string): PostqueueListing {
  const messages: QueuedMessage[] = [];
  let malformed = 0;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      malformed++;
      continue;
    }
    const r = postqueueLine.safeParse(json);
    if (!r.success) {
      malformed++;
      continue;
    }
    const m = r.data;
    messages.push({
      queueName: m.queue_name,
      queueId: m.queue_id,
      ...(m.arrival_time !== undefined ? { arrivalTime: m.arrival_time } : {}),
      ...(m.message_size !== undefined ? { size: m.message_size } : {}),
      sender: m.sender,
      recipients: m.recipients.map((x) => x.address),
    });
  }
  return { messages, malformed };
}

export interface Selection {
  /** Ids to hold, in queue order, without duplicates. */
  hold: string[];
  /** Matching messages already in the hold queue. */
  alreadyHeld: string[];
}

export interface SelectCriteria {
  account: string;
  senders?: readonly string[];
  queueIds?: readonly string[];
}

export function selectMessages(messages: readonly QueuedMessage[], c: SelectCriteria): Selection {
  const senders = new Set([c.account, ...(c.senders ?? [])].map((s) => s.toLowerCase()));
  const ids = new Set(c.queueIds ?? []);
  const hold: string[] = [];
  const alreadyHeld: string[] = [];
  const seen = new Set<string>();
  for (const m of messages) {
    if (seen.has(m.queueId)) continue;
    if (!(senders.has(m.sender.toLowerCase()) || ids.has(m.queueId))) continue;
    seen.add(m.queueId);
    (m.queueName === 'hold' ? alreadyHeld : hold).push(m.queueId);
  }
  return { hold, alreadyHeld };
}

/** Splits given ids into valid and refused ones; refused ids never reach postsuper. */
export function partitionQueueIds(ids: readonly unknown[] | undefined): { valid: string[]; invalid: number } {
  const valid: string[] = [];
  let invalid = 0;
  for (const id of ids ?? []) {
    if (isQueueId(id)) valid.push(id);
    else invalid++;
  }
  return { valid: [...new Set(valid)], invalid };
}

export interface PostfixQueueOptions {
  postqueuePath: string;
  postsuperPath: string;
  prefix: readonly string[];
  timeoutMs: number;
}

export class PostfixQueue {
  constructor(
    private readonly opts: PostfixQueueOptions,
    private readonly runner: CommandRunner,
  ) {}

  listArgv(): string[] {
    return [...this.opts.prefix, this.opts.postqueuePath, '-j'];
  }
  holdArgv(): string[] {
    return [...this.opts.prefix, this.opts.postsuperPath, '-h', '-'];
  }
  releaseArgv(): string[] {
    return [...this.opts.prefix, this.opts.postsuperPath, '-H', '-'];
  }

  async list(): Promise<PostqueueListing> {
    const r = await this.runner.run(this.listArgv(), { timeoutMs: this.opts.timeoutMs });
    if (r.code !== 0) throw new FloodgateError('FG_ACTION_COMMAND_FAILED', `postqueue -j exited ${r.code}: ${stderrTail(r.stderr) || '(no stderr)'}`);
    return parsePostqueueJson(r.stdout);
  }

  /** Feeds ids to `postsuper -h -` / `-H -`; returns postsuper's summary line (it reports on stderr). */
  private async superOn(argv: string[], ids: readonly string[], what: string): Promise<string> {
    for (const id of ids) {
      if (!queueIdPattern.test(id)) throw new FloodgateError('FG_ACTION_INVALID_QUEUE_ID', `refused queue id ${JSON.stringify(id.slice(0, 40))}`);
    }
    const r = await this.runner.run(argv, { input: ids.map((id) => `${id}\n`).join(''), timeoutMs: this.opts.timeoutMs });
    if (r.code !== 0) throw new FloodgateError('FG_ACTION_COMMAND_FAILED', `postsuper ${what} exited ${r.code}: ${stderrTail(r.stderr) || '(no stderr)'}`);
    return stderrTail(r.stderr || r.stdout, 200);
  }

  hold(ids: readonly string[]): Promise<string> {
    return this.superOn(this.holdArgv(), ids, '-h');
  }

  release(ids: readonly string[]): Promise<string> {
    return this.superOn(this.releaseArgv(), ids, '-H');
  }
}
