/** Headless Chromium for end-to-end tests: Debian's package (scripts/install-chromium.sh) driven by playwright-core, which downloads no browser. */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** FEDGE_CHROMIUM, else the Debian package's binary. */
export function chromiumPath(): string {
  const p = process.env.FEDGE_CHROMIUM || ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((x) => existsSync(x));
  if (!p || !existsSync(p)) throw new Error('no Chromium found: run bash scripts/install-chromium.sh (Debian\'s chromium package) or set FEDGE_CHROMIUM to a Chromium binary');
  return p;
}

export function launchChromium(): Promise<Browser> {
  // --no-sandbox: CI and the dev machines run tests as root, where Chromium's sandbox refuses to start.
  return chromium.launch({ executablePath: chromiumPath(), headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}
