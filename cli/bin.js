#!/usr/bin/env node
// The `connectors` command for development in this repository: runs the TypeScript sources through tsx,
// so no build step is needed. The package's bin is cli/connectors.ts, built into dist/ (see package.json).
require('tsx/cjs');
void require('./main.ts').runCli(process.argv);
