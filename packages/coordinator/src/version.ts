/** The coordinator's version, from its package.json: one place for `fedge --version` and the join reply of every transport. */
import { createRequire } from 'node:module';

export const COORDINATOR_VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;
