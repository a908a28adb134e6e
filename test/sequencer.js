// The order in which jest starts the test files. With two workers, a long file that starts late leaves
// one worker running it alone at the end of the run. Jest starts the slowest files first only when its
// cache holds their durations from an earlier run, which a fresh CI machine has not; without them it
// goes by file size, and the slowest files here are small ones that start processes and servers.
const Sequencer = require('@jest/test-sequencer').default;

/**
 * Seconds each slow file took in a full run (2 workers on 2 cores), used when jest's cache has no
 * duration of its own for it. A new file that takes more than about 10 s belongs here.
 */
const EXPECTED_SECONDS = {
  'test/cli/cli.test.ts': 50,
  'test/connectors/ssh.test.ts': 50,
  'test/connectors/sftp.test.ts': 30,
  'test/package/consumer.test.ts': 45,
  'test/reliability/faults.test.ts': 45,
  'test/runtime/limits.test.ts': 40,
  'test/cli/worker.test.ts': 28,
  'test/connectors/mcp.test.ts': 25,
  'test/reliability/load.test.ts': 27,
  'test/connectors/smtp.test.ts': 24,
  'test/main-job.test.ts': 20,
  'test/reliability/fuzz.test.ts': 20,
  'test/console/console-editing.test.ts': 20,
  'test/runtime/heartbeats.test.ts': 17,
  'test/observability/web-ui.test.ts': 17,
  'test/runtime/connection.test.ts': 15,
  'test/runtime/secrets.test.ts': 14,
  'test/observability/web-ui-codec.test.ts': 12,
  'test/console/console.test.ts': 12,
  'test/console/console-ssh.test.ts': 12,
  'test/observability/search-attributes.test.ts': 12,
  'test/cli/startup.test.ts': 10,
  'test/connectors/postgres.test.ts': 10,
  'test/lint.test.ts': 9,
  'test/connectors/mysql.test.ts': 9,
  'test/observability/codec.test.ts': 8,
  'test/runtime/store.test.ts': 8,
  'test/runtime/config.test.ts': 8,
};

class SlowestFirstSequencer extends Sequencer {
  /** Milliseconds the file is expected to take: jest's own record of it, else the table above, else unknown. */
  expectedMs(test) {
    const recorded = this.time(test);
    if (recorded != null) return recorded;
    const relative = test.path.slice(test.context.config.rootDir.length + 1).split('\\').join('/');
    const seconds = EXPECTED_SECONDS[relative];
    return seconds === undefined ? undefined : seconds * 1000;
  }

  /** Files that failed last time first (jest's rule), then the expected slowest first, then the rest by size. */
  sort(tests) {
    const keyed = tests.map((test) => ({ test, failed: this.hasFailed(test), ms: this.expectedMs(test), size: test.context.hasteFS.getSize(test.path) ?? 0 }));
    keyed.sort((a, b) => {
      if (a.failed !== b.failed) return a.failed ? -1 : 1;
      if ((a.ms === undefined) !== (b.ms === undefined)) return a.ms === undefined ? 1 : -1;
      if (a.ms !== undefined && b.ms !== undefined && a.ms !== b.ms) return b.ms - a.ms;
      return b.size - a.size;
    });
    return keyed.map(({ test }) => test);
  }
}

module.exports = SlowestFirstSequencer;
