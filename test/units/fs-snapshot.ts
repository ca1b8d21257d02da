/** A directory tree as data (type, mode, owner, content digest) to assert "nothing changed". */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    const full = join(dir, rel);
    const st = lstatSync(full);
    const meta = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
    if (st.isDirectory()) {
      out[rel || '.'] = `dir ${meta}`;
      for (const name of readdirSync(full).sort()) walk(join(rel, name));
    } else if (st.isSymbolicLink()) {
      out[rel] = `link ${readlinkSync(full)}`;
    } else {
      out[rel] = `file ${meta} ${createHash('sha256').update(readFileSync(full)).digest('hex')}`;
    }
  };
  walk('');
  return out;
}
