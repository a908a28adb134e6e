#!/usr/bin/env node
// The package's `connectors` command, built to dist/cli/connectors.js: plain JavaScript, so running it
// needs no TypeScript tooling. In this repository, cli/bin.js runs the sources through tsx instead.
import { runCli } from './main';

void runCli(process.argv);
