/** PLACEHOLDER: being written. */
import type { Parser } from '../types.js';

export const postfixQmgrParser: Parser = {
  id: 'postfix-qmgr',
  programs: [],
  parse: () => false,
};
