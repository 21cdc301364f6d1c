/** PLACEHOLDER: being written. */
import type { Parser } from '../types.js';

export const policydSpfParser: Parser = {
  id: 'policyd-spf',
  programs: [],
  parse: () => false,
};
