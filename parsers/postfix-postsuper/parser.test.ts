import { describe, expect, it } from 'vitest';
import { ParseStatus } from '../../src/core/dispatch.js';
import { eventsOf, parseText } from '../../test/helpers/parse.js';

const P = 'Nov 27 10:07:00 mail postfix/postsuper[1600]: ';

describe('postfix-postsuper', () => {
  it.each([
    ['3F2A1C0B4: removed', { queueId: '3F2A1C0B4', action: 'removed' }],
    ['3F2A1C0B4: placed on hold', { queueId: '3F2A1C0B4', action: 'hold' }],
    ['3F2A1C0B4: released from hold', { queueId: '3F2A1C0B4', action: 'released' }],
    ['3F2A1C0B4: requeued', { queueId: '3F2A1C0B4', action: 'requeued' }],
    ['Deleted: 3 messages', { action: 'removed', count: 3 }],
    ['Placed on hold: 2 messages', { action: 'hold', count: 2 }],
    ['Released from hold: 1 message', { action: 'released', count: 1 }],
    ['Requeued: 4 messages', { action: 'requeued', count: 4 }],
  ])('%s', (rest, want) => {
    const evs = eventsOf(P + rest);
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ kind: 'postsuper', ...want });
  });
  it('leaves unknown lines unknown', () => {
    expect(parseText(`${P}Deleted: many messages`).lines[0]!.status).toBe(ParseStatus.Unknown);
    expect(parseText(`${P}3F2A1C0B4: vaporised`).lines[0]!.status).toBe(ParseStatus.Unknown);
  });
});
