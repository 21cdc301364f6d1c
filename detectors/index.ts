/**
 * The detector registry: the one list to edit when adding a detector.
 * test/detector-registry.test.ts fails when a file under detectors/ is missing here.
 */
import type { Detector } from './types.js';
import { sendFloodDetector } from './send-flood.js';
import { senderMismatchDetector } from './sender-mismatch.js';
import { recipientFanoutDetector } from './recipient-fanout.js';
import { bounceRatioDetector } from './bounce-ratio.js';
import { authAttackDetector } from './auth-attack.js';
import { loginAnomalyDetector } from './login-anomaly.js';
import { trustedRelayDetector } from './trusted-relay.js';
import { rblDetector } from './rbl.js';
import { spfDetector } from './spf.js';
import { plaintextAuthDetector } from './plaintext-auth.js';

export const detectors: readonly Detector[] = [
  sendFloodDetector as Detector,
  senderMismatchDetector as Detector,
  recipientFanoutDetector as Detector,
  bounceRatioDetector as Detector,
  authAttackDetector as Detector,
  loginAnomalyDetector as Detector,
  trustedRelayDetector as Detector,
  rblDetector as Detector,
  spfDetector as Detector,
  plaintextAuthDetector as Detector,
];
