/** The label change check (pure): counts are bounded before anything is read or written. */
import { expect } from 'chai';
import { checkLabelChange } from '../../coordinator/node-admin';
import { InvalidArgumentError } from '../../shared/errors';
import { INPUT_LIMITS } from '../../shared/input-limits';

describe('node labels: bounded changes', () => {
  const many = (n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));
  const rows: { name: string; set: Record<string, string>; remove: string[]; error?: RegExp }[] = [
    { name: 'the limit of labels at once', set: many(INPUT_LIMITS.labels), remove: [] },
    { name: 'one more than the limit', set: many(INPUT_LIMITS.labels + 1), remove: [], error: /label changes in one request; a node holds at most/ },
    { name: 'many removals', set: {}, remove: Object.keys(many(10_000)), error: /10000 label changes/ },
    { name: 'a value with a terminal escape', set: { a: '\u001b[31m' }, remove: [], error: /invalid value/ },
  ];
  for (const r of rows) {
    it(r.name, () => {
      if (r.error) expect(() => checkLabelChange(r.set, r.remove)).to.throw(InvalidArgumentError, r.error);
      else expect(() => checkLabelChange(r.set, r.remove)).to.not.throw();
    });
  }
});
