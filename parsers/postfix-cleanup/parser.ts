/** PLACEHOLDER: being written. */
import type { Parser } from '../types.js';

export const postfixCleanupParser: Parser = {
  id: 'postfix-cleanup',
  programs: [],
  parse: () => false,
};
