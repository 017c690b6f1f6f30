#!/usr/bin/env node
// The `fedge` command. A committed file, not dist/ itself: npm links a package's bins when it installs it, which in a
// fresh clone is before `prepare` has built dist/, and it skips a bin whose file does not exist yet.
import '../dist/cli/main.js';
