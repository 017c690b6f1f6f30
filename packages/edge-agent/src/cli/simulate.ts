/** `fedge-agent --simulate N`: runs a SimulatedFleet from the agent's own flags (data, partition, seed, transport). */
import { ValidationError } from '@fedge/proto';
import type { BackendPreference } from '@fedge/ml';
import { SimulatedFleet } from '../fleet.js';
import { EchoExecutor, EchoShared } from '../echo-executor.js';
import { TaskExecutor } from '../executor.js';
import { SharedTrainWorker } from '../train-worker-client.js';
import { loadFleetTable, localDataOf, type DataOptions, type LocalData } from '../data.js';
import type { CoordinatorConnection } from '../transport/connection.js';
import { logger } from '../log.js';

export interface SimulateOptions {
  count: number;
  echo: boolean;
  namePrefix: string;
  /** --data and the partition flags; absent with --echo: the agents have no data and report 600 examples each. */
  data?: Omit<DataOptions, 'numPartitions' | 'partitionId'>;
  backend: BackendPreference;
  joinToken?: string;
  startRate: number;
  seed: number;
  /** Agent i's new connection (each its own socket). */
  connect: () => CoordinatorConnection;
}

/** An echo agent without --data: 600 training examples (MNIST's 60,000 over 100 agents), no columns, no profile. */
function noData(): LocalData {
  const table = (n: number) => ({ n, columns: [], targets: [], format: 'echo', fingerprint: '0'.repeat(64), source: 'echo' });
  return { train: table(600), holdout: table(60), description: 'none (--echo)', profile: { format: 'echo', n: 600, columns: [], targets: [], fingerprint: '0'.repeat(64) } };
}

/** Starts the fleet and resolves once it was stopped (SIGINT/SIGTERM). */
export async function runSimulation(o: SimulateOptions): Promise<void> {
  if (!o.echo && !o.data) throw new ValidationError('--simulate: give --data (the agents train on their partitions of it) or --echo (fixed updates, no data needed)');
  const table = o.data ? await loadFleetTable({ ...o.data, numPartitions: o.count, partitionId: 0 }) : undefined;
  const empty = noData();
  const dataOf = async (i: number): Promise<LocalData> => (table && o.data ? localDataOf(table, { ...o.data, numPartitions: o.count, partitionId: i }) : empty);
  const shared = new EchoShared();
  // Training: one worker (one tfjs backend) for the whole fleet, started on agent 0's data; tasks queue for it.
  const trainer = o.echo ? undefined : new SharedTrainWorker(await dataOf(0), o.backend);
  const backend = trainer ? (await trainer.start()).name : 'echo';
  const fleet = new SimulatedFleet({
    count: o.count,
    namePrefix: o.namePrefix,
    connect: () => o.connect(),
    data: dataOf,
    executor: (i, data) => (trainer ? new TaskExecutor(data, { shared: { worker: trainer, dataKey: String(i) } }) : new EchoExecutor(data, shared)),
    backend,
    ...(o.joinToken ? { joinToken: o.joinToken } : {}),
    startRate: o.startRate,
    seed: o.seed,
  });
  const t0 = Date.now();
  let last = '';
  const progress = setInterval(() => {
    const s = fleet.status;
    const line = `${s.connected}/${o.count} joined (${s.joinFailures} failed joins)`;
    if (line !== last) logger.warn({ ...s, seconds: Math.round((Date.now() - t0) / 1000) }, `simulated fleet: ${line}`);
    last = line;
  }, 5000);
  const stopped = new Promise<void>((resolve) => {
    const stop = (sig: string): void => {
      logger.warn({ signal: sig }, 'stopping the simulated fleet');
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  logger.warn({ agents: o.count, echo: o.echo, backend, startRate: o.startRate }, `simulated fleet: starting ${o.count} ${o.echo ? 'echo' : 'training'} agents`);
  void fleet.start();
  await stopped;
  clearInterval(progress);
  await Promise.race([fleet.stop(), new Promise((r) => setTimeout(r, 3000))]);
  await trainer?.close();
}
