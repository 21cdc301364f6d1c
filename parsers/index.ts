/**
 * The parser registry: the one list to edit when adding a parser.
 * A test (test/registry.test.ts) fails when a folder under parsers/ is
 * missing here or has no golden fixture.
 */
import type { Parser } from './types.js';
import { postfixSmtpdParser } from './postfix-smtpd/parser.js';
import { postfixPostscreenParser } from './postfix-postscreen/parser.js';
import { postfixDnsblogParser } from './postfix-dnsblog/parser.js';
import { postfixCleanupParser } from './postfix-cleanup/parser.js';
import { postfixQmgrParser } from './postfix-qmgr/parser.js';
import { postfixDeliveryParser } from './postfix-delivery/parser.js';
import { postfixBounceParser } from './postfix-bounce/parser.js';
import { postfixPickupParser } from './postfix-pickup/parser.js';
import { postfixAnvilParser } from './postfix-anvil/parser.js';
import { postfixPostsuperParser } from './postfix-postsuper/parser.js';
import { postfixMiscParser } from './postfix-misc/parser.js';
import { saslauthdParser } from './saslauthd/parser.js';
import { policydSpfParser } from './policyd-spf/parser.js';
import { amavisParser } from './amavis/parser.js';
import { zimbraMailboxParser } from './zimbra-mailbox/parser.js';
import { dovecotParser } from './dovecot/parser.js';

export const parsers: readonly Parser[] = [
  postfixSmtpdParser,
  postfixPostscreenParser,
  postfixDnsblogParser,
  postfixCleanupParser,
  postfixQmgrParser,
  postfixDeliveryParser,
  postfixBounceParser,
  postfixPickupParser,
  postfixAnvilParser,
  postfixPostsuperParser,
  postfixMiscParser,
  saslauthdParser,
  policydSpfParser,
  amavisParser,
  zimbraMailboxParser,
  dovecotParser,
];
