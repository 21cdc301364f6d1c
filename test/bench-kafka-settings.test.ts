import { describe, expect, it } from 'vitest';
import { parseKafkaSettings, throughputSettings } from '../bench/kafka-phase.js';

describe('bench --kafka-settings', () => {
  it('takes known settings with their types', () => {
    expect(parseKafkaSettings('{"batchRows":5000,"splitStages":true,"compression":"none","detectWorkers":2,"workerNodeFlags":["--max-semi-space-size=64"]}')).toEqual({
      batchRows: 5000,
      splitStages: true,
      compression: 'none',
      detectWorkers: 2,
      workerNodeFlags: ['--max-semi-space-size=64'],
    });
    expect(Object.keys(throughputSettings)).toContain('batchRows');
  });

  it('refuses a misspelt key, naming it, instead of measuring the defaults unnoticed', () => {
    expect(() => parseKafkaSettings('{"batchrows":5000}')).toThrow(/unknown setting 'batchrows' \(.*batchRows/);
  });

  it('refuses wrong types, non-objects and bad JSON with what was expected', () => {
    expect(() => parseKafkaSettings('{"batchRows":"5000"}')).toThrow(/batchRows must be a number/);
    expect(() => parseKafkaSettings('{"splitStages":"yes"}')).toThrow(/splitStages must be a boolean/);
    expect(() => parseKafkaSettings('{"detectWorkers":0}')).toThrow(/detectWorkers must be an integer ≥ 1/);
    expect(() => parseKafkaSettings('{"workerNodeFlags":"--x"}')).toThrow(/array of strings/);
    expect(() => parseKafkaSettings('[1]')).toThrow(/expected a JSON object/);
    expect(() => parseKafkaSettings('{batchRows:1}')).toThrow(/not JSON/);
  });
});
