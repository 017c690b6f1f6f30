/** A run's spooled updates: folding them back from the durable spool, the scratch spool of robust rounds, kept updates as a source. */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { StreamingFedAvg } from '../strategy/aggregate.js';
import { byName, openSpoolSource, type SpooledUpdate, type SpoolSource } from './spool-source.js';
import { DiskSpool, type UpdateSpool } from './update-spool.js';

export class RunSpools {
  private scratch: DiskSpool | undefined;

  constructor(
    private readonly runId: string,
    private readonly agg: StreamingFedAvg,
    /** Float32 values of the model (the size of a kept update, read by the strategy). */
    private readonly modelParams: number,
    /** Whether the run's sync rounds keep every accepted update (fixed for the run). */
    readonly keepsUpdates: boolean,
    /** The durable spool (RunEngineDeps.spool), and where a non-durable run's scratch spool goes (RunEngineDeps.scratchDir). */
    private readonly deps: { spool?: UpdateSpool; scratchDir?: string },
  ) {}

  /** The scratch spool of a non-durable run whose strategy keeps every update (not fsync'd: it need not survive a crash). */
  scratchSpool(): UpdateSpool {
    this.scratch ??= new DiskSpool(this.scratchRoot(), false);
    return this.scratch;
  }

  /** One directory per run and process, so concurrent runs and coordinators sharing a data dir never meet. */
  private scratchRoot(): string {
    return path.join(this.deps.scratchDir ?? path.join(tmpdir(), 'fedge-scratch'), `${this.runId.replace(/[^A-Za-z0-9._-]/g, '_')}-${process.pid}`);
  }

  /** Drops the run's scratch directory (the run ended). */
  removeScratch(): void {
    if (this.scratch) rmSync(this.scratchRoot(), { recursive: true, force: true });
    this.scratch = undefined;
  }

  /** A round's kept updates as a chunked source (agent-name order). */
  source(updates: readonly SpooledUpdate[]): SpoolSource {
    return openSpoolSource(updates, this.modelParams);
  }

  /**
   * Folds one spooled update read piece by piece from its file into the aggregator's scratch, never whole into a
   * slot (one write and one read of the update less). The file's size is checked before anything is folded; a read
   * that fails midway leaves part of it folded, and the error ends the fold: callers reset before folding a round.
   */
  async foldFromSpool(file: string, weight: number): Promise<void> {
    const reader = this.deps.spool!.open(file, this.agg.numParams * 4);
    try {
      this.agg.foldPieces(weight, (piece, byteOffset) => reader.read(piece, byteOffset));
    } finally {
      reader.close();
    }
  }

  /** Folds a round's spooled updates afresh, in agent-name order: the same model whatever order they arrived in. */
  async foldRound(accepted: readonly { name: string; file: string; weight: number }[]): Promise<void> {
    this.agg.reset();
    for (const e of [...accepted].sort(byName)) await this.foldFromSpool(e.file, e.weight);
  }
}
