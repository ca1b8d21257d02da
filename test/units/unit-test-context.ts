/** A UnitContext on a temp node root for handler tests (real files, real processes). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../shared/logger';
import { createUnitContext, type OwnedUnitContext } from '../../agent/unit-context';
import type { UnitContext } from '../../agent/units/unit';

export interface TempNode {
  root: string;
  base: OwnedUnitContext;
  /** A full context for calling a handler directly. */
  ctx(signal?: AbortSignal, changed?: Iterable<string>): UnitContext;
  cleanup(): void;
}

export function tempNode(prefix = 'units'): TempNode {
  const root = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const base = createUnitContext({ root, logger: createLogger({ level: 'silent' }) });
  return {
    root,
    base,
    ctx: (signal, changed) => ({ ...base, signal: signal ?? new AbortController().signal, changedUnits: new Set(changed ?? []) }),
    cleanup: () => {
      base.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
