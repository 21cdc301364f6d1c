/** PLACEHOLDER: being written. */
import type { Parser } from '../types.js';

export const postfixAnvilParser: Parser = {
  id: 'postfix-anvil',
  programs: [],
  parse: () => false,
};
