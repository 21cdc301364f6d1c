// The small XML reader/writer the SOAP backend uses.
import { describe, expect, it } from 'vitest';
import { findFirst, parseXml, xmlEscape } from '../../src/actions/index.js';

describe('xml', () => {
  it('escapes the five specials and refuses characters XML cannot carry', () => {
    expect(xmlEscape(`a<b>&"c'`)).toBe('a&lt;b&gt;&amp;&quot;c&apos;');
    expect(() => xmlEscape('a\u0001b')).toThrow();
  });

  it('round-trips escaped text and attributes, drops prefixes, reads CDATA', () => {
    const s = `<?xml version="1.0"?><soap:Envelope xmlns:soap="x"><soap:Body><R a="1 &gt; 0" b='it&apos;s > ok'><t>${xmlEscape(`p<a&ss"'>`)}</t><c><![CDATA[<raw>&]]></c><e/><!-- note --></R></soap:Body></soap:Envelope>`;
    const root = parseXml(s);
    expect(root.name).toBe('Envelope');
    const r = findFirst(root, 'R');
    expect(r?.attrs).toEqual({ a: '1 > 0', b: "it's > ok" });
    expect(findFirst(root, 't')?.text).toBe(`p<a&ss"'>`);
    expect(findFirst(root, 'c')?.text).toBe('<raw>&');
    expect(findFirst(root, 'e')?.children).toEqual([]);
  });

  it('refuses DTDs, unknown entities and broken nesting', () => {
    expect(() => parseXml('<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>')).toThrow(/DTD/);
    expect(() => parseXml('<x>&nbsp;</x>')).toThrow(/entity/);
    expect(() => parseXml('<x><y></x>')).toThrow();
    expect(() => parseXml('<x>')).toThrow();
    expect(() => parseXml('<x/><y/>')).toThrow();
  });
});
