/** PLACEHOLDER: being written. */
import type { Parser } from '../types.js';

export const postfixDnsblogParser: Parser = {
  id: 'postfix-dnsblog',
  programs: [],
  parse: () => false,
};
