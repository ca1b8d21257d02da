/**
 * Reading the report an agent returns with a command result (`CommandResult.reportJson`,
 * written by agent/command-executor.ts summariseReport). The runner reads only what decides a
 * node's outcome; the report itself is stored as it came (planJson, driftJson).
 */

/**
 * A VERIFY report of a verification that ran to the end: `{mode: 'verify', drift: [...],
 * probes: [...]}` with no `failure`. Undefined for anything else (no report, unreadable, or a
 * unit whose check itself failed).
 */
export function completedVerification(reportJson: string): { drifted: boolean } | undefined {
  if (!reportJson) return undefined;
  let r: unknown;
  try {
    r = JSON.parse(reportJson);
  } catch {
    return undefined;
  }
  if (typeof r !== 'object' || r === null) return undefined;
  const o = r as { mode?: unknown; drift?: unknown; probes?: unknown; failure?: unknown };
  if (o.mode !== 'verify' || o.failure !== undefined || !Array.isArray(o.drift) || !Array.isArray(o.probes)) return undefined;
  return { drifted: o.drift.length > 0 || o.probes.length > 0 };
}
