/**
 * FileService, served by every replica straight from etcd (a file is data, like a bundle: no
 * leader needed). Errors are shared/errors classes mapped to a gRPC status once, in `unary`.
 */
import type { Logger } from '../../shared';
import type { FileServiceHandlers } from '../../generated/cluster/v1/FileService';
import type { FileInfo } from '../../generated/cluster/v1/FileInfo';
import type { FileStore, StoredFile } from './file-store';
import { unary } from '../unary-handler';
import { actorOf, authorizeAction } from '../caller';
import { FailedPreconditionError } from '../../shared';

export interface FileServiceOptions {
  files: FileStore;
  logger: Logger;
}

export function toFileInfo(f: StoredFile): FileInfo {
  return {
    name: f.name, size: String(f.size), sha256: f.sha256, createdAt: f.createdAt, mode: f.mode, usedBy: f.usedBy, revision: f.revision, secret: f.secret === true,
    editions: f.editions.map((e) => ({ sha256: e.sha256, size: String(e.size), createdAt: e.createdAt, current: e.current, usedBy: e.usedBy })),
  };
}

export function createFileServiceHandlers(options: FileServiceOptions): FileServiceHandlers {
  const { files } = options;
  const log = options.logger.child({ component: 'file-service' });
  return {
    Upload: unary(async (req, call) => {
      // Replacing a secret file needs what storing one needs.
      const existing = (await files.list(req.name).catch(() => []))[0];
      authorizeAction(call, { method: 'FileService/Upload', secret: req.secret || existing?.secret === true });
      const f = await files.upload(req.name, Buffer.from(req.content), { mode: req.mode, overwrite: req.overwrite, actor: actorOf(call), secret: req.secret });
      log.info('file stored', { file: f.name, size: f.size, sha256: f.sha256, secret: f.secret === true });
      return toFileInfo(f);
    }),
    ListFiles: unary(async () => ({ files: (await files.list()).map(toFileInfo) })),
    Download: unary(async (req, call) => {
      const info = await files.require(req.name);
      if (info.secret) {
        if (!req.reveal) {
          throw new FailedPreconditionError(`file ${info.name} is secret: its content is withheld (an admin can print it with \`clusterctl files download ${info.name} --reveal\`)`);
        }
        authorizeAction(call, { method: 'FileService/Download', secret: true });
        log.info('secret file revealed', { file: info.name, actor: actorOf(call) });
      }
      const { file, content } = await files.download(req.name);
      return { info: toFileInfo(file), content };
    }),
    DeleteFile: unary(async (req, call) => {
      authorizeAction(call, { method: 'FileService/DeleteFile', secret: (await files.require(req.name)).secret === true });
      const f = await files.delete(req.name, actorOf(call));
      log.info('file deleted', { file: f.name });
      return toFileInfo(f);
    }),
  };
}
