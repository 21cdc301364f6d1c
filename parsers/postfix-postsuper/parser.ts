/** PLACEHOLDER: being written. */
import type { Parser } from '../types.js';

export const postfixPostsuperParser: Parser = {
  id: 'postfix-postsuper',
  programs: [],
  parse: () => false,
};
