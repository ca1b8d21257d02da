/**
 * Prints a stream of node events (`clusterctl nodes --watch`). Tables: the header once, then a
 * row per event, with column widths that only grow so earlier rows stay aligned with later
 * ones; events arriving together (the initial list) are printed as one batch sized to fit.
 * JSON: one object per line ({type, node}), for `| jq`. YAML: one document per event.
 */
import type { NodeEvent__Output } from '../generated/cluster/v1/NodeEvent';
import { columnWidths, formatJsonLine, formatRow, formatYaml, type OutputFormat, type OutputSink, type Row } from './output';
import { NODE_COLUMNS, NODE_WIDE_COLUMNS, nodeObject, nodeRow, nodeWideRow } from './node-view';

export class NodeWatchPrinter {
  private pending: Row[] = [];
  // EVENT starts as wide as its longest value (MODIFIED), so the first batch of ADDED rows
  // lines up with the changes that follow.
  private widths: number[] = ['MODIFIED'.length];
  private headerPrinted = false;

  constructor(
    private readonly sink: OutputSink,
    private readonly format: OutputFormat,
    private readonly now: () => number,
    private readonly colour: boolean,
  ) {}

  private get header(): readonly string[] {
    return ['EVENT', ...(this.format === 'wide' ? NODE_WIDE_COLUMNS : NODE_COLUMNS)];
  }

  /** Takes one event; tables buffer it until flush(), other formats print at once. */
  push(e: NodeEvent__Output): void {
    if (!e.node) return;
    if (this.format === 'json') {
      this.sink.write(formatJsonLine({ type: e.type, node: nodeObject(e.node) }));
    } else if (this.format === 'yaml') {
      this.sink.write(`---\n${formatYaml({ type: e.type, node: nodeObject(e.node) })}`);
    } else {
      const row = this.format === 'wide' ? nodeWideRow(e.node, this.now()) : nodeRow(e.node, this.now());
      this.pending.push([e.type, ...row]);
    }
  }

  get hasPending(): boolean {
    return this.pending.length > 0;
  }

  /** Prints the buffered rows (and the header before the first batch). */
  flush(): void {
    if (this.pending.length === 0) return;
    this.widths = columnWidths(this.header, this.pending, this.widths);
    let text = '';
    if (!this.headerPrinted) {
      text += formatRow(this.header, this.widths, false) + '\n';
      this.headerPrinted = true;
    }
    for (const row of this.pending) text += formatRow(row, this.widths, this.colour) + '\n';
    this.pending = [];
    this.sink.write(text);
  }
}
