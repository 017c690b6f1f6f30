/** `fedge agent list`: agents known to the coordinator. */
import { Command } from 'commander';
import { printJson, shortHash, table } from '../format.js';
import { withAdminOptions, withClient, type AdminOpts } from './common.js';

export function agentCommand(): Command {
  const agent = new Command('agent').description('inspect edge agents');
  agent.addHelpText('after', '\nExamples:\n  fedge agent list\n  fedge agent ls --format json');
  withAdminOptions(
    agent
      .command('list')
      .alias('ls')
      .description('list agents that joined the coordinator')
      .addHelpText('after', '\nExamples:\n  fedge agent list\n  fedge agent ls --coordinator 10.0.0.5:7070 --format json'),
  ).action(async (opts: AdminOpts) => {
    const agents = await withClient(opts, (c) => c.listAgents());
    if (opts.format === 'json') return printJson(agents);
    console.log(
      table(
        agents.map((a) => ({
          id: a.id,
          name: a.name,
          status: a.status,
          backend: a.backend,
          examples: a.numExamples,
          data: a.data ? `${a.data.format} ${a.data.columns} cols ${shortHash(a.data.fingerprint)}` : '',
          task: a.currentTask ?? 'idle',
          done: a.tasksCompleted,
          failed: a.tasksFailed,
          'last seen': a.lastSeen,
        })),
        ['id', 'name', 'status', 'backend', 'examples', 'data', 'task', 'done', 'failed', 'last seen'],
      ),
    );
  });
  return agent;
}
