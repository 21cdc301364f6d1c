/** PLACEHOLDER: being written. */
import type { Parser } from '../types.js';

export const saslauthdParser: Parser = {
  id: 'saslauthd',
  programs: [],
  parse: () => false,
};
