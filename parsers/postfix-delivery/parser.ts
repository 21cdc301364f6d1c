/** PLACEHOLDER: being written. */
import type { Parser } from '../types.js';

export const postfixDeliveryParser: Parser = {
  id: 'postfix-delivery',
  programs: [],
  parse: () => false,
};
