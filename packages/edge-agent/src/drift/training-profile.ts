/**
 * The agent's part of a run's fleet drift reference: histograms of its training split on the run's shared bins and
 * its label distribution, computed once per run (the split does not change between rounds) and sent in a status report.
 */
import { driftSpec, profileTable, taskPayloadSchema, type ProfileSection, type ProfileTable, type TaskMsg, type TaskPayload } from '@fedge/proto';
import { moduleLogger } from '../log.js';

const log = moduleLogger('drift');

/** The run's task payload (task and fleet preprocessing), undefined for a legacy task or one that does not parse. */
export function taskPayloadOf(task: Pick<TaskMsg, 'config'>): TaskPayload | undefined {
  const json = task.config?.taskJson;
  if (!json) return undefined;
  try {
    const r = taskPayloadSchema.safeParse(JSON.parse(json));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

/** Profiles each run's training split once. */
export class TrainingProfiles {
  private readonly done = new Set<string>();

  /** The profile section for a train task's run, or undefined if this run was profiled already (or there is no data). */
  forTask(task: TaskMsg, train: ProfileTable | undefined): ProfileSection | undefined {
    if (task.kind !== 'train' || !train || this.done.has(task.runId)) return undefined;
    this.done.add(task.runId);
    const payload = taskPayloadOf(task);
    const spec = driftSpec(payload);
    const target = payload?.preprocessing.targets[0];
    const t0 = performance.now();
    const profile = profileTable(train, spec, target ? { column: target.name, ...(target.kind === 'categorical' ? { values: target.values } : {}) } : undefined);
    log.debug({ runId: task.runId, features: profile.features.length, examples: profile.examples, ms: Math.round(performance.now() - t0) }, 'training profile computed');
    return { runId: task.runId, round: task.round, profile };
  }
}
