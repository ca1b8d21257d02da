/**
 * SecretService: named secrets and key rotation, admin only (shared/pki/authorization.ts).
 * Nothing here logs or returns a secret's value.
 */
import type { Logger } from '../../shared';
import type { SecretServiceHandlers } from '../../generated/cluster/v1/SecretService';
import { unary } from '../unary-handler';
import { actorOf } from '../caller';
import type { SecretStore } from './secret-store';
import type { SecretRotation } from './secret-rotation';

export interface SecretServiceOptions {
  secrets: SecretStore;
  rotation: SecretRotation;
  logger: Logger;
}

export function createSecretServiceHandlers(options: SecretServiceOptions): SecretServiceHandlers {
  const { secrets, rotation } = options;
  const log = options.logger.child({ component: 'secret-service' });
  return {
    SetSecret: unary(async (req, call) => {
      const meta = await secrets.set(req.name, Buffer.from(req.value), actorOf(call));
      log.info('secret set', { secret: meta.name, keyId: meta.keyId });
      return meta;
    }),
    ListSecrets: unary(async () => ({ secrets: await secrets.list() })),
    DeleteSecret: unary(async (req, call) => {
      const meta = await secrets.delete(req.name, actorOf(call));
      log.info('secret deleted', { secret: meta.name });
      return meta;
    }),
    RotateKey: unary(async (_req, call) => {
      const r = await rotation.rotate(actorOf(call));
      log.info('secrets key rotated', { ...r, oldKeyIds: r.oldKeyIds.join(',') });
      return {
        oldKeyIds: r.oldKeyIds.join(','), newKeyId: r.newKeyId, keysRewritten: r.keysRewritten, valuesReencrypted: r.valuesReencrypted, keysDropped: r.keysDropped,
      };
    }),
  };
}
