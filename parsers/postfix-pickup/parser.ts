/** PLACEHOLDER: being written. */
import type { Parser } from '../types.js';

export const postfixPickupParser: Parser = {
  id: 'postfix-pickup',
  programs: [],
  parse: () => false,
};
