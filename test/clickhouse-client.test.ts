/** Version gates, error classification and the password rule of the ClickHouse client, without a server. */
import { describe, expect, it } from 'vitest';
import { classify, ClickhouseError, createClickhouseClient, featuresOf, parseVersion } from '../src/clickhouse/client.js';
import { schemaStatements } from '../src/clickhouse/migrations.js';
import { clickhouseSchema } from '../src/config/distributed.js';

describe('server version and features', () => {
  it('reads versions of old and current servers', () => {
    expect(parseVersion('18.16.1')).toMatchObject({ major: 18, minor: 16, patch: 1 });
    expect(parseVersion('25.3.2.39\n')).toMatchObject({ major: 25, minor: 3, patch: 2, text: '25.3.2.39' });
    expect(() => parseVersion('nope')).toThrow(/version/);
  });

  it('gates TTL and LowCardinality on the version', () => {
    expect(featuresOf(parseVersion('18.16.1'))).toEqual({ ttl: false, lowCardinality: false });
    expect(featuresOf(parseVersion('19.6.1'))).toEqual({ ttl: true, lowCardinality: false });
    expect(featuresOf(parseVersion('19.9.2'))).toEqual({ ttl: true, lowCardinality: true });
    expect(featuresOf(parseVersion('25.3.2.39'))).toEqual({ ttl: true, lowCardinality: true });
  });

  it('the schema for 18.16 has no TTL nor LowCardinality; a current server gets both, with the retention', () => {
    const old = schemaStatements('floodgate', featuresOf(parseVersion('18.16.1')), 90).join('\n');
    expect(old).not.toMatch(/TTL|LowCardinality/);
    const current = schemaStatements('floodgate', featuresOf(parseVersion('25.3.2')), 45);
    const events = current.find((s) => s.includes('`floodgate`.`events` ('))!;
    expect(events).toContain('host LowCardinality(String)');
    expect(events).toMatch(/TTL ts \+ INTERVAL 45 DAY$/);
    // Every table has its TTL, the materialized views none.
    for (const s of current) {
      if (/^CREATE TABLE/.test(s)) expect(s, s.slice(0, 60)).toMatch(/TTL \w+ \+ INTERVAL 45 DAY$/);
      else expect(s).not.toContain('TTL');
    }
    // Same tables either way.
    const names = (xs: string[]) => xs.map((s) => /`floodgate`\.`(\w+)`/.exec(s)![1]);
    expect(names(current)).toEqual(names(schemaStatements('floodgate', featuresOf(parseVersion('18.16.1')), 90)));
  });
});

describe('classify', () => {
  const chErr = (text: string) => Object.assign(new Error(text), {});
  it('reads the code from the 18.x and the current wording', () => {
    const old = classify(chErr('Code: 27, e.displayText() = DB::Exception: Cannot parse input: expected , before: .5,"ts":1: (at row 1)\n, e.what() = DB::Exception\n'), 'insert');
    expect(old).toBeInstanceOf(ClickhouseError);
    expect(old).toMatchObject({ kind: 'data', serverCode: 27, code: 'FG_CLICKHOUSE_FAILED' });
    expect(old.message).not.toContain('e.what()');
    const current = classify(chErr('Code: 72. DB::Exception: Unsigned type must not contain \'-\' symbol. (CANNOT_PARSE_NUMBER)'), 'insert');
    expect(current).toMatchObject({ kind: 'data', serverCode: 72 });
  });

  it('tells connection trouble, refused rows and refused queries apart', () => {
    expect(classify(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), 'q')).toMatchObject({ kind: 'connection', code: 'FG_CLICKHOUSE_UNAVAILABLE' });
    expect(classify(new Error('Timeout error.'), 'q')).toMatchObject({ kind: 'connection' });
    expect(classify(chErr('Code: 193, e.displayText() = DB::Exception: Wrong password for user x'), 'q')).toMatchObject({ kind: 'connection', serverCode: 193 });
    expect(classify(chErr('Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS)'), 'q')).toMatchObject({ kind: 'connection' });
    expect(classify(chErr('Code: 60, e.displayText() = DB::Exception: Table default.nope doesn\'t exist.'), 'q')).toMatchObject({ kind: 'query', serverCode: 60 });
    expect(classify(chErr('Code: 62. DB::Exception: Syntax error'), 'q')).toMatchObject({ kind: 'query' });
    expect(classify(Object.assign(new Error('x'), { code: '117' }), 'q')).toMatchObject({ kind: 'data', serverCode: 117 });
  });
});

describe('password', () => {
  it('comes from the variable passwordEnv names; a missing variable is a config error that names it, not the value', () => {
    const cfg = clickhouseSchema.parse({ passwordEnv: 'FG_TEST_CH_PASSWORD' });
    expect(() => createClickhouseClient(cfg, { env: {} })).toThrow(/FG_TEST_CH_PASSWORD is not set/);
    const c = createClickhouseClient(cfg, { env: { FG_TEST_CH_PASSWORD: 's3cret' } });
    expect(JSON.stringify(c)).not.toContain('s3cret');
    void c.close();
  });
});
