/** PLACEHOLDER: being written. */
import type { Parser } from '../types.js';

export const postfixBounceParser: Parser = {
  id: 'postfix-bounce',
  programs: [],
  parse: () => false,
};
