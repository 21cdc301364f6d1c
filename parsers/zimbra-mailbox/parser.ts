/** PLACEHOLDER: being written. */
import type { Parser } from '../types.js';

export const zimbraMailboxParser: Parser = {
  id: 'zimbra-mailbox',
  programs: [],
  parse: () => false,
};
