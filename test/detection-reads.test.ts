/**
 * A detector's `reads` test is a promise: an event it refuses is one its
 * onEvent does nothing with. The distributed parse stage relies on it to
 * leave such events out of the detect stage (detectionReads), so a test
 * that refused an event the detector needs would lose findings in
 * distributed mode only.
 *
 * Checked per detector, alone (with all of them, another detector's test
 * could let the event through and hide the mistake), with the optional
 * paths of its config switched on, over the route-partition corpus
 * (scenarios, decoys, the demo day, a generated two-host log): every item
 * delivered, against only the events detectionReads lets through. The
 * findings and the whole window store must be the same.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../src/config/config.js';
import { DetectionEngine, detectionReads } from '../src/detect/engine.js';
import type { Finding } from '../src/detect/finding.js';
import { SiteKnowledge } from '../src/detect/site.js';
import { detectors } from '../detectors/index.js';
import type { Detector } from '../detectors/types.js';
import { partitionCorpus } from './helpers/partition-corpus.js';
import { collectItems, writeInputs, type Item } from './helpers/partition-run.js';
import { scenarioConfig } from './helpers/scenario-run.js';

/** Config that takes each detector down every path its events can take. */
const optionalPathsOn: Record<string, unknown> = {
  'auth-attack': { countDisconnectFailures: true, smtpClientIsSuccess: true },
  'plaintext-auth': { enabled: true, requireTlsLogging: false },
};

function run(items: readonly Item[], detector: Detector, only: ((e: Item['event'] & object) => boolean) | undefined) {
  const base = scenarioConfig();
  const cfg = validateConfig({ site: base.site, detectors: { [detector.id]: optionalPathsOn[detector.id] ?? {} } });
  const findings: Finding[] = [];
  const engine = new DetectionEngine({
    detectors: [detector],
    configs: cfg.detectorConfigs,
    site: new SiteKnowledge(cfg.site),
    onFinding: (f) => findings.push(f),
  });
  let delivered = 0;
  for (const it of items) {
    if (it.event !== undefined) {
      if (only !== undefined && !only(it.event)) continue;
      delivered++;
      engine.onEvent(it.event);
    } else if (it.message !== undefined) engine.onMessage(it.message);
    else if (it.submission !== undefined) engine.onSubmission(it.submission);
    else engine.onSettled(it.settled);
  }
  return { findings: findings.map((f) => JSON.stringify(f)), store: JSON.stringify(engine.store.snapshot()), site: JSON.stringify(engine.site.snapshot()), delivered };
}

describe("each detector's `reads` test refuses only events it does nothing with", () => {
  const items: Item[] = [];
  beforeAll(async () => {
    for (const c of partitionCorpus()) items.push(...(await collectItems(writeInputs(c), scenarioConfig())));
  }, 120_000);

  for (const d of detectors.filter((x) => x.reads !== undefined)) {
    it(d.id, () => {
      const all = run(items, d, undefined);
      const filtered = run(items, d, detectionReads([d]));
      // the test refuses something here, or it would not be tested at all
      expect(filtered.delivered, 'events left out').toBeLessThan(all.delivered);
      expect(filtered.findings).toEqual(all.findings);
      expect(filtered.store).toEqual(all.store);
      expect(filtered.site).toEqual(all.site);
    });
  }

  it('the corpus gives each of these detectors findings to compare', () => {
    for (const d of detectors.filter((x) => x.reads !== undefined)) expect(run(items, d, undefined).findings.length, d.id).toBeGreaterThan(0);
  });
});
