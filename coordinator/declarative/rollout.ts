/**
 * The rollout of `clusterctl apply`: after the configuration is written, the nodes the plan
 * counted "to upgrade" (plan.ts planConfig's `upgrades`, the one computation of out of date)
 * get one upgrade job per group, through the jobs engine's StartJob path (JobStarter.start:
 * claims, lifecycle, maintenance, the manager's default batch and the group's soak apply).
 *
 * StartJob refuses a whole job when one node cannot take it, so the nodes that could not are
 * left out first and named (`rolloutTargets`, pure): in maintenance, held by a live job, or in a
 * state an upgrade cannot start from (e.g. never commissioned). A node that became busy between
 * this read and the claim makes that group's job refused, said in `refused`.
 */
import { canTransition, errorMessage } from '../../shared';
import type { PlanResult } from './plan';
import type { StoredConfig } from './plan';
import { jobRequest, type StartJob } from '../reconcile/job-request';
import { currentBinding, runBound } from '../request-binding';

export interface RolloutSkip {
  nodeId: string;
  reason: string;
}

export interface GroupRollout {
  group: string;
  /** The group's bundle version the job applies. */
  bundle: string;
  /** The nodes the job covers (empty: no job). */
  nodeIds: string[];
  skipped: RolloutSkip[];
  /** Set once started. */
  jobId?: string;
  /** StartJob's refusal, when it refused. */
  refused?: string;
}

/** Per group of the plan with nodes to upgrade (in the file's group order): which go in a job, which are left out and why. Pure. */
export function rolloutTargets(plan: Pick<PlanResult, 'groups' | 'upgrades'>, stored: Pick<StoredConfig, 'nodes' | 'activeJobs'>): GroupRollout[] {
  const byId = new Map(stored.nodes.map((n) => [n.record.id, n.record]));
  const out: GroupRollout[] = [];
  for (const g of plan.groups) {
    const ups = plan.upgrades.filter((u) => u.group === g.name);
    if (ups.length === 0) continue;
    const r: GroupRollout = { group: g.name, bundle: ups[0].to, nodeIds: [], skipped: [] };
    for (const u of ups) {
      const n = byId.get(u.nodeId);
      if (!n) continue;
      if (n.currentJob && stored.activeJobs.has(n.currentJob)) r.skipped.push({ nodeId: n.id, reason: `in job ${n.currentJob}` });
      else if (n.maintenance) r.skipped.push({ nodeId: n.id, reason: `in maintenance${n.maintenanceReason ? ` (${n.maintenanceReason})` : ''}` });
      else if (!canTransition(n.state, 'Upgrading')) {
        r.skipped.push({
          nodeId: n.id,
          reason: canTransition(n.state, 'Commissioning')
            ? `${n.state}, never commissioned: nothing to upgrade (clusterctl node commission ${n.id} -g ${g.name})`
            : `${n.state}: an upgrade cannot start from it`,
        });
      }
      else r.nodeIds.push(n.id);
    }
    out.push(r);
  }
  return out;
}

/**
 * Starts the jobs of `rollouts` (in place: jobId or refused), one at a time. Each runs under the
 * apply call's deadline with an idempotency key of its own derived from the call's (one key
 * cannot name two jobs: shared by all groups, the second job would be refused as another request).
 */
export async function startRollouts(rollouts: GroupRollout[], startJob: StartJob, requestedBy: string): Promise<void> {
  const binding = currentBinding();
  for (const r of rollouts) {
    if (r.nodeIds.length === 0) continue;
    const request = jobRequest({ kind: 'upgrade', requestedBy, nodeIds: r.nodeIds, group: r.group });
    const start = (): ReturnType<StartJob> => startJob(request);
    try {
      const job = binding?.idempotencyKey
        ? await runBound({ ...binding, idempotencyKey: `${binding.idempotencyKey}:rollout:${r.group}` }, start)
        : await start();
      r.jobId = job.record.id;
    } catch (err) {
      r.refused = errorMessage(err);
    }
  }
}
