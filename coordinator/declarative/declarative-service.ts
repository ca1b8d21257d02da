/**
 * DeclarativeService (every replica): Plan changes nothing; Apply writes in one guarded
 * transaction (apply.ts) and, with `rollout`, then starts the upgrade jobs of the nodes left out
 * of date (rollout.ts), as the caller: it must also be allowed to start upgrade jobs, checked
 * before anything is written. Errors are shared/errors classes mapped to a gRPC status here.
 */
import type { Logger } from '../../shared';
import type { DeclarativeServiceHandlers } from '../../generated/cluster/v1/DeclarativeService';
import type { Declarative } from './apply';
import { unary } from '../unary-handler';
import { actorName, authorizeAction } from '../caller';
import { hasCommandUnits } from '../config/config-service';
import { PermissionDeniedError } from '../../shared';

/** An apply that rolls out is also a StartJob of upgrade jobs: refused, naming the way to apply without it. */
function authorizeRollout(call: Parameters<typeof authorizeAction>[0]): void {
  try {
    authorizeAction(call, { method: 'JobService/StartJob', kind: 'upgrade' });
  } catch (err) {
    if (!(err instanceof PermissionDeniedError)) throw err;
    throw new PermissionDeniedError(`apply rolls out the configuration with upgrade jobs, which you may not start (${err.message}); nothing was applied — apply with --no-rollout to write the configuration only`);
  }
}

export interface DeclarativeServiceOptions {
  declarative: Declarative;
  logger: Logger;
}

export function createDeclarativeServiceHandlers(options: DeclarativeServiceOptions): DeclarativeServiceHandlers {
  const { declarative } = options;
  const log = options.logger.child({ component: 'declarative-service' });
  return {
    Plan: unary(async (req) => {
      const p = await declarative.plan(req.document, req.sourceName.trim() || 'cluster file');
      return { revision: p.revision, hasChanges: p.plan.hasChanges, planJson: JSON.stringify(p.plan), text: p.text, reads: p.reads, document: p.document };
    }),
    Apply: unary(async (req, call) => {
      // requestedBy is the client's say-so: the audit trail takes the certificate's identity.
      const peer = authorizeAction(call, { method: 'DeclarativeService/Apply' });
      const r = await declarative.apply({
        document: req.document, source: req.sourceName, planRevision: req.planRevision.trim(), planReads: req.planReads, actor: actorName(peer),
        // Bundles with command units run arbitrary commands on nodes: admin only.
        authorize: (file) => authorizeAction(call, { method: 'DeclarativeService/Apply', commandUnits: file.bundles.some(hasCommandUnits) }),
        // The rollout starts upgrade jobs: the caller must be allowed to, checked before anything is written.
        ...(req.rollout ? { rollout: { authorize: () => authorizeRollout(call) } } : {}),
      });
      log.info(r.changed ? 'configuration applied' : 'configuration already up to date', { revision: r.revision });
      for (const g of r.rollouts ?? []) {
        if (g.jobId) log.info('rollout job started', { group: g.group, jobId: g.jobId, nodes: g.nodeIds.length, skipped: g.skipped.length });
        else if (g.refused) log.info('rollout refused', { group: g.group, err: g.refused });
      }
      return {
        revision: r.revision, changed: r.changed, planJson: JSON.stringify(r.plan), text: r.text,
        rollouts: (r.rollouts ?? []).map((g) => ({ group: g.group, bundle: g.bundle, jobId: g.jobId ?? '', nodeIds: g.nodeIds, skipped: g.skipped, refused: g.refused ?? '' })),
      };
    }),
  };
}
