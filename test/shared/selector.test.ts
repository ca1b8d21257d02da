/**
 * Table tests of shared/selector.ts (kubectl's label selector syntax): what parses to what,
 * what is refused with a message showing examples, and which label sets match.
 */
import { expect } from 'chai';
import { parseSelector, matchesSelector, formatSelector, type Requirement } from '../../shared/selector';
import { InvalidArgumentError } from '../../shared/errors';

describe('shared/selector', () => {
  describe('valid selectors parse', () => {
    const rows: [string, Requirement[]][] = [
      ['', []],
      ['   ', []],
      ['role=worker', [{ op: 'eq', key: 'role', value: 'worker' }]],
      ['role==worker', [{ op: 'eq', key: 'role', value: 'worker' }]],
      ['role = worker', [{ op: 'eq', key: 'role', value: 'worker' }]],
      ['role!=worker', [{ op: 'neq', key: 'role', value: 'worker' }]],
      ['role=', [{ op: 'eq', key: 'role', value: '' }]],
      ['gpu', [{ op: 'exists', key: 'gpu' }]],
      ['!gpu', [{ op: 'absent', key: 'gpu' }]],
      ['zone in (a,b)', [{ op: 'in', key: 'zone', values: ['a', 'b'] }]],
      ['zone notin (a, b ,c)', [{ op: 'notin', key: 'zone', values: ['a', 'b', 'c'] }]],
      ['example.com/rack=r1', [{ op: 'eq', key: 'example.com/rack', value: 'r1' }]],
      [
        'role=worker,rack!=r1,gpu,zone in (a,b),!maint',
        [
          { op: 'eq', key: 'role', value: 'worker' },
          { op: 'neq', key: 'rack', value: 'r1' },
          { op: 'exists', key: 'gpu' },
          { op: 'in', key: 'zone', values: ['a', 'b'] },
          { op: 'absent', key: 'maint' },
        ],
      ],
    ];
    for (const [text, want] of rows) {
      it(JSON.stringify(text), () => expect(parseSelector(text)).to.deep.equal(want));
    }
  });

  describe('malformed selectors are refused with one line naming the selector and giving examples', () => {
    const rows: [string, RegExp][] = [
      ['role=worker,', /empty term/],
      [',role=worker', /empty term/],
      ['a,,b', /empty term/],
      ['role=work er', /cannot read/],
      ['role=-x', /invalid value "-x"/],
      ['role=x-', /invalid value "x-"/],
      ['role=a/b', /invalid value "a\/b"/],
      ['-role=x', /invalid key "-role"/],
      ['zone in ()', /invalid value list/],
      ['zone in (a,,b)', /invalid value list/],
      ['zone in a,b', /cannot read|invalid/],
      ['=x', /cannot read/],
      ['!', /cannot read/],
      ['!-x', /invalid key "-x"/],
      ['role=!x', /invalid value/],
      ['ro le', /cannot read/],
      ['role=worker)', /invalid value/],
      [`k=${'v'.repeat(64)}`, /invalid value/],
    ];
    for (const [text, why] of rows) {
      it(JSON.stringify(text.length > 30 ? `${text.slice(0, 12)}…` : text), () => {
        let err: unknown;
        try {
          parseSelector(text);
        } catch (e) {
          err = e;
        }
        expect(err, `${text} should be refused`).to.be.instanceOf(InvalidArgumentError);
        const message = (err as Error).message;
        expect(message).to.match(why);
        expect(message.startsWith(`malformed label selector ${JSON.stringify(text)}`)).to.equal(true);
        expect(message).to.contain('examples:');
        expect(message).not.to.contain('\n');
      });
    }
  });

  describe('matching', () => {
    const labels = { role: 'worker', rack: 'r2', zone: 'b', gpu: '' };
    const rows: [string, Record<string, string>, boolean][] = [
      ['', labels, true],
      ['', {}, true],
      ['role=worker', labels, true],
      ['role=control', labels, false],
      ['role=worker', {}, false],
      ['role!=control', labels, true],
      ['role!=worker', labels, false],
      ['role!=worker', {}, true], // absent key satisfies != (kubectl)
      ['gpu', labels, true],
      ['gpu', { role: 'worker' }, false],
      ['!gpu', labels, false],
      ['!gpu', { role: 'worker' }, true],
      ['gpu=', labels, true], // empty value matches an empty label
      ['zone in (a,b)', labels, true],
      ['zone in (a,c)', labels, false],
      ['zone in (a,b)', {}, false],
      ['zone notin (a,b)', labels, false],
      ['zone notin (a,c)', labels, true],
      ['zone notin (a,c)', {}, true],
      ['role=worker,rack=r2', labels, true],
      ['role=worker,rack=r1', labels, false], // every term must hold
      ['toString', {}, false], // no prototype keys leak in
      ['constructor', {}, false],
    ];
    for (const [sel, l, want] of rows) {
      it(`${JSON.stringify(sel)} on ${JSON.stringify(l)} → ${want}`, () => expect(matchesSelector(parseSelector(sel), l)).to.equal(want));
    }
  });

  describe('formatSelector is the inverse of parseSelector on canonical text', () => {
    for (const text of ['role=worker', 'role!=worker', 'gpu', '!gpu', 'zone in (a,b)', 'zone notin (a,b)', 'role=worker,rack!=r1,gpu,zone in (a,b),!maint']) {
      it(text, () => {
        expect(formatSelector(parseSelector(text))).to.equal(text);
        expect(parseSelector(formatSelector(parseSelector(text)))).to.deep.equal(parseSelector(text));
      });
    }
  });
});
