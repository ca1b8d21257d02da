/**
 * How the reconcilers start jobs: through the jobs engine's own StartJob path (JobStarter.start,
 * the same function JobService.StartJob calls), so claims, maintenance, lifecycle and group
 * rules apply to automatic jobs exactly as to an operator's. Narrowed to one function so the
 * reconcilers do not depend on the engine's internals.
 */
import type { StartJobRequest__Output } from '../../generated/cluster/v1/StartJobRequest';

export type StartJob = (request: StartJobRequest__Output) => Promise<{ record: { id: string } }>;

/** A full StartJobRequest with the proto defaults, as the gRPC layer would hand it over. */
export function jobRequest(over: Partial<StartJobRequest__Output> & Pick<StartJobRequest__Output, 'kind' | 'requestedBy'>): StartJobRequest__Output {
  return {
    nodeIds: [], labelSelector: '', factSelector: '', group: '', strategy: '', batch: '', maxFailures: 0, dryRun: false,
    force: false, extraVarsJson: '', bundle: '', argv: [], timeoutMs: 0, canary: 0, canarySoakMs: 0,
    soakMs: 0, probeIntervalMs: 0, probes: [], rollback: '', secretExtraVars: [], ...over,
  };
}
