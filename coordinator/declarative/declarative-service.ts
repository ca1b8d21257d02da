/**
 * DeclarativeService (every replica): Plan changes nothing; Apply writes in one guarded
 * transaction (apply.ts). Errors are shared/errors classes mapped to a gRPC status here.
 */
import type { Logger } from '../../shared';
import type { DeclarativeServiceHandlers } from '../../generated/cluster/v1/DeclarativeService';
import type { Declarative } from './apply';
import { unary } from '../unary-handler';

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
    Apply: unary(async (req) => {
      const r = await declarative.apply({
        document: req.document, source: req.sourceName, planRevision: req.planRevision.trim(), planReads: req.planReads, actor: req.requestedBy,
      });
      log.info(r.changed ? 'configuration applied' : 'configuration already up to date', { revision: r.revision });
      return { revision: r.revision, changed: r.changed, planJson: JSON.stringify(r.plan), text: r.text };
    }),
  };
}
