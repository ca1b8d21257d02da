/**
 * The bundle a job sends: a "name@version" reference resolved to the bundle record with every
 * file unit's pushed source inlined, so the agent needs nothing but the command. One resolver
 * per job run: each reference is read once however many nodes use it, and a failed read is
 * forgotten so the next node tries again.
 *
 * A source that is a secret file, a named secret (`source: secret:NAME`), or a unit's content
 * marked `secret: true` is decrypted here, on the leader, for the command only (docs/secrets.md):
 * the unit gets mode 0600 unless it names a mode and is marked `secret: true` (so the agent
 * redacts it from its drift reports and logs too), and the cleartext is listed in `secrets` so
 * the job redacts it from what it records.
 */
import { inlineSources, type Bundle } from '../../shared/bundle';
import { parseBundleRef, type ConfigReader } from './config-records';
import { SECRET_SOURCE_PREFIX } from '../secrets/secret-store';
import { openBundle } from '../secrets/secret-content';

/** Mode of a file unit delivering a secret when the unit names none. */
export const SECRET_FILE_MODE = '0600';

export interface ResolvedBundle {
  bundle: Bundle;
  /** `bundle` as the command carries it (Command.bundleJson), serialised once for every node. */
  bundleJson: string;
  /** Cleartext of every secret the bundle delivers. */
  secrets: string[];
}

export class BundleResolver {
  private readonly cache = new Map<string, Promise<ResolvedBundle>>();

  constructor(private readonly config: ConfigReader) {}

  resolve(ref: string): Promise<ResolvedBundle> {
    let p = this.cache.get(ref);
    if (!p) {
      p = this.read(ref);
      p.catch(() => this.cache.delete(ref));
      this.cache.set(ref, p);
    }
    return p;
  }

  private async read(ref: string): Promise<ResolvedBundle> {
    const { name, version } = parseBundleRef(ref);
    const b = await this.config.bundle(name, version);
    // The edition the version pinned at push; a version pushed before editions existed reads the current one.
    const pins = await this.config.sourcePins(name, version);
    const files = new Map<string, string>();
    const secret = new Set<string>();
    for (const u of b.units) {
      if (u.kind === 'file' && u.source !== undefined && !files.has(u.source)) {
        if (u.source.startsWith(SECRET_SOURCE_PREFIX)) {
          const value = await this.config.secret(u.source.slice(SECRET_SOURCE_PREFIX.length));
          if (value !== undefined) { files.set(u.source, value); secret.add(u.source); }
          continue;
        }
        const f = await this.config.file(u.source, pins[u.source]);
        if (f !== undefined) files.set(u.source, f.content);
        if (f?.secret) secret.add(u.source);
      }
    }
    const units = b.units.map((u) => {
      if (u.kind !== 'file' || !((u.source !== undefined && secret.has(u.source)) || u.secret === true)) return u;
      return { ...u, secret: true, ...(u.mode === undefined ? { mode: SECRET_FILE_MODE } : {}) };
    });
    const inlined = inlineSources({ ...b, units }, (n) => files.get(n), 'upload it with `clusterctl files upload`, or set a named secret with `clusterctl secret set`');
    const opened = await openBundle(inlined, (e) => this.config.open(e));
    return { bundle: opened.bundle, bundleJson: JSON.stringify(opened.bundle), secrets: [...[...secret].map((s) => files.get(s) ?? ''), ...opened.secrets] };
  }
}
