/** Options and helpers shared by the admin commands. */
import { Command, Option } from 'commander';
import { AdminClient, DEFAULT_COORDINATOR } from '../admin-client.js';
import { parseFormat, type OutputFormat } from '../format.js';

export interface AdminOpts { coordinator: string; format: OutputFormat }

export function withAdminOptions(cmd: Command): Command {
  return cmd
    .option('--coordinator <host:port>', 'coordinator address (env FEDGE_COORDINATOR)', process.env.FEDGE_COORDINATOR ?? DEFAULT_COORDINATOR)
    .addOption(new Option('--format <format>', 'output format: table or json').default('table').argParser(parseFormat));
}

export async function withClient<T>(opts: AdminOpts, fn: (c: AdminClient) => Promise<T>): Promise<T> {
  const c = new AdminClient(opts.coordinator);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}
