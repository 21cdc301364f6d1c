/** PLACEHOLDER: being written. */
import type { Parser } from '../types.js';

export const dovecotParser: Parser = {
  id: 'dovecot',
  programs: [],
  parse: () => false,
};
