/**
 * The bundle a job sends: a "name@version" reference resolved to the bundle record with every
 * file unit's pushed source inlined, so the agent needs nothing but the command. One resolver
 * per job run: each reference is read once however many nodes use it, and a failed read is
 * forgotten so the next node tries again.
 */
import { inlineSources, type Bundle } from '../../shared/bundle';
import { parseBundleRef, type ConfigReader } from './config-records';

export class BundleResolver {
  private readonly cache = new Map<string, Promise<Bundle>>();

  constructor(private readonly config: ConfigReader) {}

  resolve(ref: string): Promise<Bundle> {
    let p = this.cache.get(ref);
    if (!p) {
      p = this.read(ref);
      p.catch(() => this.cache.delete(ref));
      this.cache.set(ref, p);
    }
    return p;
  }

  private async read(ref: string): Promise<Bundle> {
    const { name, version } = parseBundleRef(ref);
    const b = await this.config.bundle(name, version);
    // The edition the version pinned at push; a version pushed before editions existed reads the current one.
    const pins = await this.config.sourcePins(name, version);
    const files = new Map<string, string>();
    for (const u of b.units) {
      if (u.kind === 'file' && u.source !== undefined && !files.has(u.source)) {
        const content = await this.config.file(u.source, pins[u.source]);
        if (content !== undefined) files.set(u.source, content);
      }
    }
    return inlineSources(b, (n) => files.get(n), 'upload it with `clusterctl files upload`');
  }
}
