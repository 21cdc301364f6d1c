import { describe, expect, it } from 'vitest';
import { ParseStatus } from '../../src/core/dispatch.js';
import { eventsOf, parseText } from '../../test/helpers/parse.js';

const P = 'Nov 27 10:06:00 mail postfix/pickup[1500]: ';

describe('postfix-pickup', () => {
  it.each(['root', '', 'a@b.example', '$(reboot)>`id`@x> y'])('from=<%s>', (s) => {
    expect(eventsOf(`${P}81E343F2E2: uid=1000 from=<${s}>`)).toEqual([expect.objectContaining({ kind: 'queue.pickup', queueId: '81E343F2E2', uid: 1000, sender: s })]);
  });
  it('leaves unknown lines unknown', () => {
    expect(parseText(`${P}81E343F2E2: uid=x from=<a>`).lines[0]!.status).toBe(ParseStatus.Unknown);
  });
});
