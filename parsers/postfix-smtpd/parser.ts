/** PLACEHOLDER: being written. */
import type { Parser } from '../types.js';

export const postfixSmtpdParser: Parser = {
  id: 'postfix-smtpd',
  programs: [],
  parse: () => false,
};
