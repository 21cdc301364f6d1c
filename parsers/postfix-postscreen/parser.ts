/** PLACEHOLDER: being written. */
import type { Parser } from '../types.js';

export const postfixPostscreenParser: Parser = {
  id: 'postfix-postscreen',
  programs: [],
  parse: () => false,
};
