import { expect } from 'chai';
import {
  ageSince, columnWidths, formatAge, formatBool, formatBytes, formatDuration, formatJson, formatJsonLine, formatTable,
  formatYaml, orDash, terminalSafe, useColour, type Row,
} from '../../cli/output';

describe('cli/output', () => {
  describe('formatBytes', () => {
    const cases: [number | string | undefined, string][] = [
      [undefined, '-'],
      [0, '-'],
      ['0', '-'],
      ['not a number', '-'],
      [-5, '-'],
      [512, '512 B'],
      [1024, '1 KiB'],
      [1536, '1.5 KiB'],
      [512 * 1024 ** 2, '512 MiB'],
      [16 * 1024 ** 3, '16 GiB'],
      ['16741326848', '15.6 GiB'],
      [String(2 * 1024 ** 4 - 200 * 1024 ** 3), '1.8 TiB'],
      [1024 ** 6 * 3, '3072 PiB'],
    ];
    for (const [input, want] of cases) {
      it(`${JSON.stringify(input)} → ${want}`, () => expect(formatBytes(input)).to.equal(want));
    }
  });

  describe('formatAge', () => {
    const S = 1000;
    const M = 60 * S;
    const H = 60 * M;
    const D = 24 * H;
    const cases: [number, string][] = [
      [-5 * S, '0s'],
      [0, '0s'],
      [999, '0s'],
      [45 * S, '45s'],
      [119 * S, '119s'],
      [2 * M, '2m'],
      [2 * M + 30 * S, '2m30s'],
      [9 * M + 59 * S, '9m59s'],
      [10 * M + 30 * S, '10m'],
      [179 * M, '179m'],
      [3 * H, '3h'],
      [5 * H + 10 * M, '5h10m'],
      [8 * H + 10 * M, '8h'],
      [47 * H, '47h'],
      [2 * D, '2d'],
      [400 * D, '400d'],
      [3 * 365 * D, '3y'],
      [NaN, '-'],
    ];
    for (const [ms, want] of cases) {
      it(`${ms} ms → ${want}`, () => expect(formatAge(ms)).to.equal(want));
    }

    it('ageSince reads RFC 3339 and shows - for empty or unreadable times', () => {
      const now = Date.parse('2026-01-01T12:00:00.000Z');
      expect(ageSince('2026-01-01T11:55:00.000Z', now)).to.equal('5m');
      expect(ageSince('2026-01-01T10:00:00Z', now)).to.equal('120m');
      expect(ageSince('2026-01-01T07:00:00Z', now)).to.equal('5h');
      expect(ageSince('', now)).to.equal('-');
      expect(ageSince(undefined, now)).to.equal('-');
      expect(ageSince('yesterday', now)).to.equal('-');
    });
  });

  describe('small formats', () => {
    const cases: [string, string, string][] = [
      ['formatBool true', formatBool(true), 'yes'],
      ['formatBool false', formatBool(false), 'no'],
      ['formatBool undefined', formatBool(undefined), 'no'],
      ['formatDuration 5000', formatDuration(5000), '5s'],
      ['formatDuration 500', formatDuration(500), '500ms'],
      ['formatDuration 1500', formatDuration(1500), '1.5s'],
      ['formatDuration 120000', formatDuration(120000), '2m'],
      ['orDash empty', orDash(''), '-'],
      ['orDash null', orDash(null), '-'],
      ['orDash text', orDash('x'), 'x'],
    ];
    for (const [name, got, want] of cases) it(`${name} → ${want}`, () => expect(got).to.equal(want));
  });

  describe('formatTable', () => {
    it('aligns columns on the widest cell, three spaces apart, no trailing blanks', () => {
      const rows: Row[] = [['node-1', 'Discovered', 'yes'], ['n2', 'Failed', 'no']];
      expect(formatTable(['ID', 'STATE', 'REACHABLE'], rows)).to.equal(
        'ID       STATE        REACHABLE\n' +
        'node-1   Discovered   yes\n' +
        'n2       Failed       no\n',
      );
    });

    it('prints only the header for no rows', () => {
      expect(formatTable(['ID', 'STATE'], [])).to.equal('ID   STATE\n');
    });

    it('colours cells only when asked, and aligns the same with and without colour', () => {
      const rows: Row[] = [[{ text: 'Failed', colour: 'red' }, 'x'], ['Commissioned', 'y']];
      const plain = formatTable(['STATE', 'V'], rows);
      const coloured = formatTable(['STATE', 'V'], rows, { colour: true });
      expect(plain).to.not.include('\x1b[');
      expect(coloured).to.include('\x1b[31mFailed\x1b[39m');
      // eslint-disable-next-line no-control-regex
      expect(coloured.replace(/\x1b\[\d+m/g, '')).to.equal(plain);
    });

    it('keeps widths a streaming table already printed (minWidths)', () => {
      expect(columnWidths(['A', 'BB'], [['x', 'y']], [5, 1])).to.deep.equal([5, 2]);
      expect(columnWidths(['A', 'BB'], [['xxxxxxx', 'y']], [5, 1])).to.deep.equal([7, 2]);
    });
  });

  describe('json and yaml', () => {
    it('pretty JSON keeps the caller\'s key order and ends with a newline', () => {
      expect(formatJson({ id: 'a', state: 'New', reachable: false })).to.equal('{\n  "id": "a",\n  "state": "New",\n  "reachable": false\n}\n');
      expect(formatJson([])).to.equal('[]\n');
    });

    it('JSON lines are one line each', () => {
      expect(formatJsonLine({ type: 'ADDED', node: { id: 'a' } })).to.equal('{"type":"ADDED","node":{"id":"a"}}\n');
    });

    it('YAML never folds long strings', () => {
      const long = 'x'.repeat(200);
      const text = formatYaml([{ id: 'a', lastError: long }]);
      expect(text).to.equal(`- id: a\n  lastError: ${long}\n`);
    });
  });

  describe('useColour', () => {
    const cases: [string, boolean, NodeJS.ProcessEnv, boolean][] = [
      ['terminal', true, {}, true],
      ['pipe', false, {}, false],
      ['terminal with NO_COLOR', true, { NO_COLOR: '1' }, false],
      ['terminal with empty NO_COLOR', true, { NO_COLOR: '' }, true],
      ['dumb terminal', true, { TERM: 'dumb' }, false],
    ];
    for (const [name, isTTY, env, want] of cases) {
      it(`${name} → ${want}`, () => expect(useColour({ isTTY, write: () => undefined }, env)).to.equal(want));
    }
  });

  describe('terminalSafe (every line clusterctl prints)', () => {
    const rows: [string, string, string][] = [
      ['a terminal escape from an agent version', 'v1\x1b]0;pwned\x07\x1b[2J', 'v1\\u001b]0;pwned\\u0007\\u001b[2J'],
      ['a carriage return that would overprint', 'ok\rFAKE', 'ok\\u000dFAKE'],
      ['a C1 CSI', 'a\u009b2Jb', 'a\\u009b2Jb'],
      ['a lone surrogate', 'x\uD800y', 'x\uFFFDy'],
      ['newlines, tabs and a surrogate pair stay', 'a\tb\n\uD83D\uDE00\n', 'a\tb\n\uD83D\uDE00\n'],
      ['our own colour codes stay', '\x1b[31mfailed\x1b[39m', '\x1b[31mfailed\x1b[39m'],
      ['a colour code we never write does not', '\x1b[5mblink', '\\u001b[5mblink'],
    ];
    for (const [name, input, want] of rows) it(name, () => expect(terminalSafe(input)).to.equal(want));

    it('a table cell is made safe before its colour: a received colour code is not taken for ours', () => {
      const table = formatTable(['ID', 'VERSION'], [['n1', { text: '\x1b[31mred', colour: 'green' }]], { colour: true });
      expect(terminalSafe(table)).to.equal(table);
      expect(table).to.contain('\x1b[32m\\u001b[31mred\x1b[39m');
    });
  });
});
