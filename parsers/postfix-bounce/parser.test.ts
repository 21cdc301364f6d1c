import { describe, expect, it } from 'vitest';
import { ParseStatus } from '../../src/core/dispatch.js';
import { eventsOf, parseText } from '../../test/helpers/parse.js';

const P = 'Nov 27 10:05:00 mail postfix/bounce[1400]: ';

describe('postfix-bounce', () => {
  it.each(['sender non-delivery notification', 'sender delivery status notification', 'sender delay notification', 'postmaster non-delivery notification'])('%s', (n) => {
    expect(eventsOf(`${P}732BB407C3: ${n}: 4Z3Tsc1Hk9z7LVP`)).toEqual([expect.objectContaining({ kind: 'bounce.notify', queueId: '732BB407C3', childQueueId: '4Z3Tsc1Hk9z7LVP', notification: n })]);
  });
  it('rejects a bogus child id', () => {
    expect(parseText(`${P}732BB407C3: sender non-delivery notification: $(x)`).lines[0]!.status).toBe(ParseStatus.Unknown);
  });
});
