/**
 * Just enough XML for the Zimbra admin SOAP API: escaping for what we send,
 * and a small non-validating parser for what comes back (elements,
 * attributes, text, CDATA; namespace prefixes dropped). No DTDs, so no
 * entity expansion; input size is capped; linear scanning, no backtracking.
 */

export function xmlEscape(s: string): string {
  let out = '';
  for (const ch of s) {
    switch (ch) {
      case '&': out += '&amp;'; break;
      case '<': out += '&lt;'; break;
      case '>': out += '&gt;'; break;
      case '"': out += '&quot;'; break;
      case "'": out += '&apos;'; break;
      default: {
        const c = ch.codePointAt(0) ?? 0;
        // XML 1.0 cannot carry most control characters at all, not even as references.
        if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) throw new Error(`cannot put U+${c.toString(16).padStart(4, '0')} in XML`);
        out += ch;
      }
    }
  }
  return out;
}

export interface XmlElement {
  /** Local name, namespace prefix removed. */
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  /** Concatenated direct text content. */
  text: string;
}

const entities: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decode(s: string): string {
  if (!s.includes('&')) return s;
  let out = '';
  let i = 0;
  while (i < s.length) {
    const amp = s.indexOf('&', i);
    if (amp === -1) { out += s.slice(i); break; }
    out += s.slice(i, amp);
    const semi = s.indexOf(';', amp);
    if (semi === -1 || semi - amp > 10) throw new Error('bad entity reference');
    const ref = s.slice(amp + 1, semi);
    if (ref.startsWith('#x')) out += String.fromCodePoint(parseInt(ref.slice(2), 16));
    else if (ref.startsWith('#')) out += String.fromCodePoint(parseInt(ref.slice(1), 10));
    else if (entities[ref] !== undefined) out += entities[ref];
    else throw new Error(`unknown entity &${ref};`);
    i = semi + 1;
  }
  return out;
}

function localName(qname: string): string {
  const c = qname.indexOf(':');
  return c === -1 ? qname : qname.slice(c + 1);
}

function isSpace(c: string | undefined): boolean {
  return c === ' ' || c === '\n' || c === '\t' || c === '\r';
}

function parseTag(body: string): { name: string; attrs: Record<string, string> } {
  let i = 0;
  while (i < body.length && !isSpace(body[i])) i++;
  const name = localName(body.slice(0, i));
  const attrs: Record<string, string> = {};
  while (i < body.length) {
    while (isSpace(body[i])) i++;
    if (i >= body.length) break;
    const eq = body.indexOf('=', i);
    if (eq === -1) throw new Error('attribute without value');
    const key = body.slice(i, eq).trim();
    let j = eq + 1;
    while (isSpace(body[j])) j++;
    const q = body[j];
    if (q !== '"' && q !== "'") throw new Error('unquoted attribute');
    const end = body.indexOf(q, j + 1);
    if (end === -1) throw new Error('unterminated attribute');
    attrs[localName(key)] = decode(body.slice(j + 1, end));
    i = end + 1;
  }
  return { name, attrs };
}

/** Index of the `>` closing a start tag, skipping quoted attribute values (which may contain `>`). */
function tagEnd(src: string, from: number): number {
  let quote: string | undefined;
  for (let i = from; i < src.length; i++) {
    const c = src[i];
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '>') return i;
  }
  return -1;
}

/** Parses a document and returns its root element; throws on anything malformed. */
export function parseXml(src: string, maxLength = 4 * 1024 * 1024): XmlElement {
  if (src.length > maxLength) throw new Error(`XML larger than ${maxLength} characters`);
  const root: XmlElement = { name: '#document', attrs: {}, children: [], text: '' };
  const stack: XmlElement[] = [root];
  let i = 0;
  while (i < src.length) {
    const lt = src.indexOf('<', i);
    const top = stack[stack.length - 1] as XmlElement;
    if (lt === -1) {
      if (src.slice(i).trim() !== '') throw new Error('text after the root element');
      break;
    }
    if (lt > i) top.text += decode(src.slice(i, lt));
    if (src.startsWith('<?', lt)) {
      const end = src.indexOf('?>', lt);
      if (end === -1) throw new Error('unterminated processing instruction');
      i = end + 2;
    } else if (src.startsWith('<!--', lt)) {
      const end = src.indexOf('-->', lt);
      if (end === -1) throw new Error('unterminated comment');
      i = end + 3;
    } else if (src.startsWith('<![CDATA[', lt)) {
      const end = src.indexOf(']]>', lt);
      if (end === -1) throw new Error('unterminated CDATA');
      top.text += src.slice(lt + 9, end);
      i = end + 3;
    } else if (src.startsWith('<!', lt)) {
      throw new Error('DTDs are not accepted');
    } else if (src.startsWith('</', lt)) {
      const end = src.indexOf('>', lt);
      if (end === -1) throw new Error('unterminated end tag');
      const name = localName(src.slice(lt + 2, end).trim());
      if (stack.length < 2 || top.name !== name) throw new Error(`unexpected </${name}>`);
      stack.pop();
      i = end + 1;
    } else {
      const end = tagEnd(src, lt + 1);
      if (end === -1) throw new Error('unterminated tag');
      let body = src.slice(lt + 1, end);
      const selfClosing = body.endsWith('/');
      if (selfClosing) body = body.slice(0, -1);
      const { name, attrs } = parseTag(body);
      if (name === '') throw new Error('empty tag name');
      const el: XmlElement = { name, attrs, children: [], text: '' };
      top.children.push(el);
      if (!selfClosing) stack.push(el);
      i = end + 1;
    }
  }
  if (stack.length !== 1) throw new Error('unclosed elements');
  const first = root.children[0];
  if (!first || root.children.length !== 1) throw new Error('expected exactly one root element');
  return first;
}

/** Depth-first search for the first descendant (or self) with this local name. */
export function findFirst(el: XmlElement, name: string): XmlElement | undefined {
  if (el.name === name) return el;
  for (const c of el.children) {
    const f = findFirst(c, name);
    if (f) return f;
  }
  return undefined;
}
