#!/usr/bin/env node
// The `connectors` command: runs the TypeScript sources through tsx, so no build step is needed.
require('tsx/cjs');
void require('./main.ts').runCli(process.argv);
