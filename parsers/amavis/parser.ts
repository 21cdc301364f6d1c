/** PLACEHOLDER: being written. */
import type { Parser } from '../types.js';

export const amavisParser: Parser = {
  id: 'amavis',
  programs: [],
  parse: () => false,
};
