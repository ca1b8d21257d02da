/**
 * Mocha's setup file (etcd3's _setup.ts). Tests run from dist/; the suite's command
 * (scripts/test) builds first, so a stale build cannot be tested by accident.
 */
import { existsSync } from 'node:fs';
import { BIN } from './helpers';

export const mochaHooks = {
  beforeAll(): void {
    for (const bin of Object.values(BIN)) {
      if (!existsSync(bin)) throw new Error(`${bin} is missing: run scripts/test (it builds first)`);
    }
  },
};
