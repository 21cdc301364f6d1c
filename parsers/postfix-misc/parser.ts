/** PLACEHOLDER: being written. */
import type { Parser } from '../types.js';

export const postfixMiscParser: Parser = {
  id: 'postfix-misc',
  programs: [],
  parse: () => false,
};
