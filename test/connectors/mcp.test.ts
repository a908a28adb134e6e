import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createMcpConnector, MCP_MAX_RESPONSE_BYTES, mcpConnector, mcpSchema } from '../../connectors/mcp';
import { builtInTypes, ConnectorRegistry } from '../../connectors/registry';
import { createConnectionRunner } from '../../core/runner';
import { Keyring } from '../../core/keyring';
import { ConnectorService } from '../../core/service';
import { ConnectorStore } from '../../core/store/connector-store';
import { PgDatabase, PgliteDatabase } from '../../core/store/database';
import { startManagementApi, type RunningManagementApi } from '../../api/server';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import { unusedLocalUrl } from '../fixtures/http-server';
import { FIXTURE_ORDERS, startMcpServer, type McpTestServer } from '../fixtures/mcp-server';
import { STDIO_FIXTURE_COMMAND } from '../fixtures/mcp-stdio-server';
import { failureOf, invokeContext as context } from '../support/connector-calls';
import { historyText, startHarness, type Harness } from '../support/harness';
import { LOG_DIR, recordResponse, recordSecrets } from '../support/leak-sweep';
import { runProcess } from '../support/run-process';
import { uniqueName } from '../support/stack';

// Distinctive, so a leak cannot be a coincidence.
const TOKEN = `mcp-tok-${randomBytes(8).toString('hex')}`;
const WRONG_TOKEN = `mcp-wrong-${randomBytes(8).toString('hex')}`;
const API_TOKEN = `rw-${randomBytes(12).toString('hex')}`;
recordSecrets('the MCP tokens of mcp.test.ts', [TOKEN, WRONG_TOKEN, API_TOKEN]);

const BIN = path.resolve(__dirname, '..', '..', 'cli', 'bin.js');

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- results are read field by field

async function invoke(inputs: Record<string, unknown>, ctx = context()): Promise<Json> {
  return (await mcpConnector.invoke(mcpSchema.parse(inputs), ctx)) as Json;
}

describe('MCP connector', () => {
  let server: McpTestServer;
  let base: Record<string, unknown>;

  beforeAll(async () => {
    server = await startMcpServer({ token: TOKEN });
    base = { url: server.url, bearer_token: TOKEN };
  });
  afterAll(async () => {
    await mcpConnector.close?.();
    await server?.close();
  });

  describe('the type, called directly', () => {
    test('tools.call returns the content, structured content and isError; the token travels as a bearer header', async () => {
      const result = await invoke({ ...base, tool: 'add', arguments: { a: 2, b: 3 } });
      expect(result).toEqual({ content: [{ type: 'text', text: '5' }], structuredContent: { sum: 5 }, isError: false });
      const call = server.requests.find((r) => r.rpc === 'tools/call')!;
      expect(call.headers.authorization).toBe(`Bearer ${TOKEN}`);
      expect(server.toolCalls).toContainEqual({ name: 'add', arguments: { a: 2, b: 3 } });
    });

    test('a tool that answers isError fails the call, not retried, with its text; tool_errors: return returns it', async () => {
      const failure = await failureOf(invoke({ ...base, tool: 'lookup_order', arguments: { id: 'Z-9' } }, context({ connector: 'orders_mcp' })));
      expect(failure).toMatchObject({ type: 'Connector.External.ToolError', nonRetryable: true });
      expect(failure.message).toBe(`MCP connector orders_mcp ${server.url}: tool lookup_order failed: no order Z-9`);
      const returned = await invoke({ ...base, tool: 'lookup_order', arguments: { id: 'Z-9' }, tool_errors: 'return' });
      expect(returned).toEqual({ content: [{ type: 'text', text: 'no order Z-9' }], isError: true });
      expect(JSON.parse((await invoke({ ...base, tool: 'lookup_order', arguments: { id: 'A-1' } })).content[0].text)).toEqual(FIXTURE_ORDERS['A-1']);
    });

    test('without a tool the call lists the tools; resources.read and prompts.get reach the server', async () => {
      const listed = await invoke(base);
      expect(listed.tools.map((t: Json) => t.name)).toEqual(['add', 'lookup_order', 'echo_auth', 'wait']);
      expect(listed.tools[0]).toMatchObject({ name: 'add', description: 'Adds two numbers.', input_schema: { type: 'object', required: ['a', 'b'] } });
      const resource = await invoke({ ...base, operation: 'resources.read', uri: 'orders://recent' });
      expect(JSON.parse(resource.contents[0].text)).toEqual(Object.values(FIXTURE_ORDERS));
      const prompt = await invoke({ ...base, operation: 'prompts.get', prompt: 'summarise_order', arguments: { id: 'B-7' } });
      expect(prompt.messages[0].content.text).toBe('Summarise order B-7.');
    });

    test('a wrong token is Connector.External.Auth, not retried, naming the connector and never the token', async () => {
      const failure = await failureOf(invoke({ ...base, bearer_token: WRONG_TOKEN, tool: 'add', arguments: { a: 1, b: 1 } }, context({ connector: 'orders_mcp' })));
      expect(failure).toMatchObject({ type: 'Connector.External.Auth', nonRetryable: true });
      expect(failure.message).toContain('connector orders_mcp');
      expect(failure.message).toContain('HTTP 401');
      expect(JSON.stringify([failure.message, failure.details])).not.toContain(WRONG_TOKEN);
    });

    test('an unreachable server is a retryable Connector.External.Network; a slow tool a retryable timeout', async () => {
      const nowhere = await failureOf(invoke({ url: `${await unusedLocalUrl()}/mcp`, tool: 'add' }));
      expect(nowhere).toMatchObject({ type: 'Connector.External.Network', nonRetryable: false });
      expect(nowhere.message).toContain('ECONNREFUSED');
      const slow = await failureOf(invoke({ ...base, tool: 'wait', arguments: { ms: 3_000 }, timeout: '300ms' }));
      expect(slow).toMatchObject({ type: 'Connector.External.Timeout', nonRetryable: false });
    });

    test('an answer larger than 8 MiB fails the call, not retried, naming the limit: the worker does not read it whole', async () => {
      // lookup_order answers `no order <id>`: an id as long as the limit makes an answer past it.
      const small = await invoke({ ...base, tool: 'lookup_order', arguments: { id: 'x'.repeat(1024) }, tool_errors: 'return' });
      expect(small.content[0].text).toBe(`no order ${'x'.repeat(1024)}`);
      const failure = await failureOf(
        mcpConnector.invoke(mcpSchema.parse({ ...base, tool: 'lookup_order', arguments: { id: 'x'.repeat(MCP_MAX_RESPONSE_BYTES) }, tool_errors: 'return' }), context({ connector: 'orders_mcp' })),
      );
      expect(failure).toMatchObject({ type: 'Connector.External.Error', nonRetryable: true });
      expect(failure.message).toBe(`MCP connector orders_mcp ${server.url} failed: its answer is larger than ${MCP_MAX_RESPONSE_BYTES} bytes, which the connector does not read`);
    });

    test('url or command, not both; a Host header and credentials in the url are refused, naming the field', () => {
      const issues = (inputs: Record<string, unknown>) => mcpSchema.safeParse(inputs).error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
      expect(issues({ url: server.url, command: 'npx' })).toEqual(['command: give url or command, not both']);
      expect(issues({})).toEqual(['url: give url (a Streamable HTTP endpoint), or command (a stdio server)']);
      expect(issues({ command: 'x', bearer_token: 'abc' })).toEqual(['bearer_token: bearer_token is sent to url only: a stdio server takes its credentials in env']);
      expect(issues({ url: server.url, headers: { Host: 'elsewhere' } }).join()).toContain('Host header is not supported');
      expect(issues({ url: `http://user:${TOKEN}@127.0.0.1:1/mcp` }).join()).toContain('must not carry credentials');
    });

    test('one initialized session serves the calls of a connector version; a session the server forgot is reopened', async () => {
      const pooled = createMcpConnector();
      try {
        const before = server.requests.filter((r) => r.rpc === 'initialize').length;
        const call = (a: number) => pooled.invoke(mcpSchema.parse({ ...base, tool: 'add', arguments: { a, b: 1 } }), context({ poolKey: 'pooled_mcp@1' }));
        await Promise.all([call(1), call(2), call(3)]);
        expect(server.requests.filter((r) => r.rpc === 'initialize').length - before).toBe(1);
        await server.forgetSessions();
        expect(await call(9)).toMatchObject({ structuredContent: { sum: 10 } });
        expect(server.requests.filter((r) => r.rpc === 'initialize').length - before).toBe(2);
        expect(pooled.pools!.list()).toEqual([{ poolKey: 'pooled_mcp@1', leases: 0, retired: false }]);
      } finally {
        await pooled.close!();
      }
    });

    test('the destination is the origin of url', () => {
      expect(mcpConnector.destination!({ url: 'https://mcp.example.com:8443/mcp?x=1' })).toBe('https://mcp.example.com:8443');
    });
  });

  describe('through a workflow, the CLI and the API', () => {
    let h: Harness;
    let name: string;
    const options = (extra: Record<string, unknown> = {}) => ({ taskQueue: h.connectorQueue, retry: { initialInterval: '50ms', maximumInterval: '100ms', maximumAttempts: 3 }, ...extra });

    beforeAll(async () => {
      h = await startHarness();
      name = uniqueName('orders_mcp').toLowerCase();
      await h.service.apply({ name, type: 'MCP', value: { url: server.url, bearer_token: TOKEN } });
    });
    afterAll(async () => {
      await h?.shutdown();
    });

    test('invoke, test and introspect through connect(): the token reaches the server and no history holds it', async () => {
      const calls = server.requests.length;
      const { result, workflowId } = await h.call(name, { tool: 'add', arguments: { a: 20, b: 22 } });
      expect(result.error).toBeUndefined();
      expect(result.details!.output).toMatchObject({ structuredContent: { sum: 42 }, isError: false });
      expect(result.details!.connector).toMatchObject({ name, type: 'MCP', version: 1 });
      expect(result.details!.inputs.bearer_token).toBe('********');
      // A server that echoes the credential gets it redacted from the output.
      const echoed = await h.call(name, { tool: 'echo_auth' });
      expect(echoed.result.details!.output).toMatchObject({ content: [{ type: 'text', text: 'you sent: Bearer ********' }] });

      const tested = await h.run<Json>('testConnector', { connector: name, options: options() });
      expect(tested.result).toMatchObject({ ok: true, message: expect.stringContaining('fixture-mcp 1.2.3') });
      expect(tested.result.message).toContain('offers 4 tools');
      const described = await h.run<Json>('introspect', { connector: name, options: options() });
      expect(described.result.server).toEqual({ name: 'fixture-mcp', version: '1.2.3' });
      expect(described.result.tools.map((t: Json) => t.name)).toContain('lookup_order');
      expect(described.result.resources).toEqual([expect.objectContaining({ uri: 'orders://recent', name: 'recent_orders' })]);
      expect(described.result.prompts).toEqual([expect.objectContaining({ name: 'summarise_order' })]);

      // First where it must be: the server received the token on every request of these calls ...
      const received = server.requests.slice(calls);
      expect(received.length).toBeGreaterThan(3);
      for (const request of received) expect(request.headers.authorization).toBe(`Bearer ${TOKEN}`);
      // ... then nowhere else: not in the parents' histories nor in those of their connections.
      for (const id of [workflowId, echoed.workflowId, tested.workflowId, described.workflowId]) {
        for (const wf of [id, `${id}/connection/1`]) {
          const text = await historyText(h.client, wf);
          expect(text.length).toBeGreaterThan(0);
          expect(text).not.toContain(TOKEN);
        }
      }
      expect(await historyText(h.client, `${workflowId}/connection/1`)).toContain('"sum":42');
    });

    test('a wrong token fails once, not retried, as Connector.External.Auth naming the connector', async () => {
      const wrong = uniqueName('wrong_mcp').toLowerCase();
      await h.service.apply({ name: wrong, type: 'MCP', value: { url: server.url, bearer_token: WRONG_TOKEN } });
      const refusedBefore = server.requests.filter((r) => r.headers.authorization === `Bearer ${WRONG_TOKEN}`).length;
      const { result } = await h.call(wrong, { tool: 'add', arguments: { a: 1, b: 2 } });
      expect(result.error).toMatchObject({ type: 'Connector.External.Auth', nonRetryable: true });
      expect(result.error!.message).toContain(`connector ${wrong}`);
      expect(result.error!.message).not.toContain(WRONG_TOKEN);
      // One initialize request: the failure was not retried.
      expect(server.requests.filter((r) => r.headers.authorization === `Bearer ${WRONG_TOKEN}`).length - refusedBefore).toBe(1);
    });

    test('an unreachable server is retried as Connector.External.Network', async () => {
      const gone = uniqueName('gone_mcp').toLowerCase();
      await h.service.apply({ name: gone, type: 'MCP', value: { url: `${await unusedLocalUrl()}/mcp`, bearer_token: TOKEN } });
      const started = Date.now();
      const { result } = await h.call(gone, { tool: 'add' }, { retry: { initialInterval: '400ms', backoffCoefficient: 1, maximumAttempts: 3 } });
      expect(result.error).toMatchObject({ type: 'Connector.External.Network', nonRetryable: false });
      expect(result.error!.message).toContain('ECONNREFUSED');
      expect(result.error!.message).toContain(`connector ${gone}`);
      // Three attempts, 400 ms apart: it was retried.
      expect(Date.now() - started).toBeGreaterThanOrEqual(800);
    });

    test('an override of url does not take the stored token along', async () => {
      const { result } = await h.call(name, { url: `${await unusedLocalUrl()}/mcp`, tool: 'add' });
      expect(result.error).toMatchObject({ type: 'Connector.DestinationNotAllowed', message: expect.stringContaining('bearer_token') });
    });

    test('no log line of this run holds the token', () => {
      const files = existsSync(LOG_DIR) ? readdirSync(LOG_DIR).map((f) => path.join(LOG_DIR, f)) : [];
      for (const file of files) expect([file, readFileSync(file, 'utf8').includes(TOKEN)]).toEqual([file, false]);
    });
  });

  describe('the CLI and the HTTP API', () => {
    let db: ScratchDatabase;
    let store: ConnectorStore;
    let service: ConnectorService;
    let api: RunningManagementApi;
    const keyring = Keyring.generateEntry('k1');
    const outputs: string[] = [];

    beforeAll(async () => {
      db = await createScratchDatabase('tc_mcp');
      store = new ConnectorStore(new PgDatabase({ connectionString: db.url }));
      await store.migrate();
      service = new ConnectorService({ store, registry: new ConnectorRegistry(), keyring: Keyring.parse(keyring) });
      api = await startManagementApi({ service, runner: createConnectionRunner({ service }), tokens: { readWrite: [API_TOKEN], readOnly: [] }, port: 0 });
    });
    afterAll(async () => {
      await api?.close();
      await service?.close();
      await store?.close();
      await db?.drop();
    });

    const cli = async (args: string[], input?: string) => {
      const run = await runProcess(process.execPath, [BIN, ...args], {
        env: { ...process.env, DATABASE_URL: db.url, TC_KEYRING: keyring, TC_KEYRING_FILE: '', VAULT_ADDR: '' },
        timeoutMs: 60_000,
        input,
        label: `connectors ${args[0]}`,
      });
      outputs.push(run.stdout, run.stderr);
      recordResponse(`connectors ${args.join(' ')}`, `${run.stdout}\n${run.stderr}`);
      return run;
    };

    const call = async (method: string, route: string, body?: unknown) => {
      const res = await fetch(`${api.url}${route}`, {
        method,
        headers: { authorization: `Bearer ${API_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      outputs.push(text);
      recordResponse(`management API ${method} ${route}`, text);
      return { status: res.status, json: JSON.parse(text) as Json };
    };

    test('apply, get, test and introspect an MCP connector with the CLI; the token is masked and never printed', async () => {
      const yaml = `name: desk_mcp\ntype: MCP\nvalue:\n  url: ${server.url}\n  bearer_token: ${TOKEN}\n`;
      expect(await cli(['apply', '-f', '-'], yaml)).toMatchObject({ code: 0, stdout: 'desk_mcp: created version 1\n' });
      const got = JSON.parse((await cli(['get', 'desk_mcp', '-o', 'json'])).stdout);
      expect(got.value).toEqual({ url: server.url, bearer_token: '********' });
      const before = server.requests.length;
      const tested = await cli(['test', 'desk_mcp']);
      expect(tested).toMatchObject({ code: 0, stdout: expect.stringMatching(/^ok: fixture-mcp 1\.2\.3 at .* offers 4 tools/) });
      const introspected = await cli(['introspect', 'desk_mcp']);
      expect(introspected.code).toBe(0);
      expect(introspected.stdout).toContain('lookup_order');
      expect(introspected.stdout).toContain('orders://recent');
      expect(server.requests.slice(before).every((r) => r.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
      const types = await cli(['types', 'mcp']);
      expect(types.stdout).toContain('bearer_token');
      expect(outputs.join('\n')).not.toContain(TOKEN);
    });

    test('test and introspect through the HTTP API; its JSON Schema marks the secrets; no response holds the token', async () => {
      const created = await call('POST', '/v1/connectors', { name: 'api_mcp', type: 'MCP', value: { url: server.url, bearer_token: TOKEN } });
      expect(created.status).toBe(201);
      expect(created.json.value.bearer_token).toBe('********');
      const tested = await call('POST', '/v1/connectors/api_mcp/test');
      expect(tested).toMatchObject({ status: 200, json: { ok: true, message: expect.stringContaining('offers 4 tools') } });
      const introspected = await call('POST', '/v1/connectors/api_mcp/introspect');
      expect(introspected.status).toBe(200);
      expect(introspected.json.tools.map((t: Json) => t.name)).toEqual(['add', 'lookup_order', 'echo_auth', 'wait']);
      const type = await call('GET', '/v1/types/MCP');
      expect(type.json.sensitive).toContain('bearer_token');
      expect(type.json.json_schema.properties.bearer_token.sensitive).toBe(true);
      // Every input carries its description, for forms and `connectors types`.
      const undescribed = Object.entries(type.json.json_schema.properties as Record<string, Json>).filter(([, field]) => !field.description).map(([key]) => key);
      expect(undescribed).toEqual([]);
      const refused = await call('PUT', '/v1/connectors/api_mcp', { type: 'MCP', value: { url: server.url, bearer_token: WRONG_TOKEN } });
      expect(refused.status).toBe(428);
      expect(outputs.join('\n')).not.toContain(TOKEN);
    });
  });

  describe('stdio servers', () => {
    const STDIO_TOKEN = `stdio-tok-${randomBytes(8).toString('hex')}`;
    recordSecrets('the stdio token of mcp.test.ts', [STDIO_TOKEN]);
    const stdio = { ...STDIO_FIXTURE_COMMAND, env: { MCP_FIXTURE_TOKEN: STDIO_TOKEN } };

    test('are refused unless the operator allows them, naming TC_MCP_STDIO', async () => {
      const failure = await failureOf(mcpConnector.invoke(mcpSchema.parse({ ...stdio, tool: 'add' }), context({ connector: 'local_mcp' })));
      expect(failure).toMatchObject({ type: 'Connector.InvalidInput', nonRetryable: true });
      expect(failure.message).toContain('stdio MCP servers (a program the connector worker starts) are off on this worker; the operator allows them with TC_MCP_STDIO=on at worker start');
      expect(await mcpConnector.test(mcpSchema.parse(stdio), context())).toMatchObject({ ok: false, message: expect.stringContaining('TC_MCP_STDIO=on') });
      expect(new ConnectorRegistry(builtInTypes({})).get('MCP')).toBe(mcpConnector);
    });

    test('with TC_MCP_STDIO=on the worker starts the program with the connector’s env and none of its own secrets', async () => {
      const on = new ConnectorRegistry(builtInTypes({ mcpStdio: true })).get('MCP') as typeof mcpConnector;
      expect(on).not.toBe(mcpConnector);
      process.env.TC_FAKE_WORKER_SECRET = 'must-not-reach-the-program';
      try {
        const sum = await on.invoke(mcpSchema.parse({ ...stdio, tool: 'add', arguments: { a: 2, b: 3 } }), context({ poolKey: 'stdio_mcp@1' }));
        expect(sum).toMatchObject({ structuredContent: { sum: 5 } });
        const echoed = (await on.invoke(mcpSchema.parse({ ...stdio, tool: 'echo_auth' }), context({ poolKey: 'stdio_mcp@1' }))) as Json;
        expect(echoed.content[0].text).toBe(`you sent: env ${STDIO_TOKEN}`);
        const keys = ((await on.invoke(mcpSchema.parse({ ...stdio, tool: 'env_keys' }), context({ poolKey: 'stdio_mcp@1' }))) as Json).content[0].text.split(',');
        expect(keys).toContain('MCP_FIXTURE_TOKEN');
        for (const key of keys) expect(['HOME', 'LOGNAME', 'MCP_FIXTURE_TOKEN', 'PATH', 'SHELL', 'TERM', 'USER']).toContain(key);
        expect(await on.test(mcpSchema.parse(stdio), context())).toMatchObject({ ok: true, message: expect.stringContaining('offers 6 tools') });
        // A server process that ends is started again by the next call, not left dead in the pool.
        await on.invoke(mcpSchema.parse({ ...stdio, tool: 'exit' }), context({ poolKey: 'stdio_mcp@1' }));
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(await on.invoke(mcpSchema.parse({ ...stdio, tool: 'add', arguments: { a: 4, b: 4 } }), context({ poolKey: 'stdio_mcp@1' }))).toMatchObject({ structuredContent: { sum: 8 } });
        const missing = await failureOf(on.invoke(mcpSchema.parse({ command: '/nonexistent/mcp-server', tool: 'add' }), context()));
        expect(missing).toMatchObject({ type: 'Connector.InvalidInput', nonRetryable: true, message: expect.stringContaining('command cannot be started (no such program, ENOENT)') });
      } finally {
        delete process.env.TC_FAKE_WORKER_SECRET;
        await on.close!();
      }
    });

    test('a stored env goes only to the program and arguments it was written for; an echo of it is redacted', async () => {
      const store = new ConnectorStore(await PgliteDatabase.open());
      const service = new ConnectorService({ store, registry: new ConnectorRegistry(builtInTypes({ mcpStdio: true })), keyring: new Keyring([{ id: 'k1', key: randomBytes(32) }]) });
      try {
        await store.migrate();
        await service.apply({ name: 'local_mcp', type: 'MCP', value: stdio });
        const runner = createConnectionRunner({ service });
        const run = (overrides: Record<string, unknown>) => runner.run({ connector: 'local_mcp', overrides }, { signal: new AbortController().signal });
        const echoed = await run({ tool: 'echo_auth' });
        expect(echoed.output).toMatchObject({ content: [{ type: 'text', text: 'you sent: env ********' }] });
        expect(echoed.inputs.env).toEqual({ MCP_FIXTURE_TOKEN: '********' });
        const elsewhere = await failureOf(run({ tool: 'echo_auth', args: [...stdio.args, '--other'] }));
        // A workflow may not choose the program at all (see the next test); its editor may, and the destination rule holds there.
        expect(elsewhere).toMatchObject({ type: 'Connector.LockedField', message: expect.stringContaining('args') });
        expect(elsewhere.message).not.toContain(STDIO_TOKEN);
      } finally {
        await service.registry.close();
        await store.close();
      }
    });

    test('only a stored profile chooses the program: a workflow can neither start one inline nor change command, args or env (NODE_OPTIONS would run its code with the stored env)', async () => {
      const store = new ConnectorStore(await PgliteDatabase.open());
      const service = new ConnectorService({ store, registry: new ConnectorRegistry(builtInTypes({ mcpStdio: true })), keyring: new Keyring([{ id: 'k1', key: randomBytes(32) }]) });
      const dir = mkdtempSync(path.join(tmpdir(), 'mcp-stdio-'));
      const marker = path.join(dir, 'ran');
      // Code a workflow author would like the worker to run: it writes the stored env token to a file.
      const payload = `--import=data:text/javascript,import{writeFileSync}from'node:fs';writeFileSync('${marker}',String(process.env.MCP_FIXTURE_TOKEN))`;
      try {
        await store.migrate();
        await service.apply({ name: 'local_mcp', type: 'MCP', value: stdio });
        const runner = createConnectionRunner({ service });
        const signal = new AbortController().signal;
        const viaEnv = await runner.run({ connector: 'local_mcp', overrides: { tool: 'add', arguments: { a: 1, b: 2 }, env: { NODE_OPTIONS: payload } } }, { signal }).catch((err: unknown) => err);
        // Before the fix the call succeeded, and the workflow's code had written the stored token here.
        expect(existsSync(marker) ? readFileSync(marker, 'utf8') : 'not run').toBe('not run');
        expect(viaEnv).toMatchObject({ type: 'Connector.LockedField', message: expect.stringContaining('env') });
        const viaCommand = await failureOf(
          runner.run({ connector: 'local_mcp', overrides: { command: process.execPath, args: ['-e', `require('fs').writeFileSync(${JSON.stringify(marker)}, 'ran')`], env: { MCP_FIXTURE_TOKEN: 'mine' } } }, { signal }),
        );
        expect(viaCommand).toMatchObject({ type: 'Connector.LockedField', message: expect.stringMatching(/command.*args|args.*command/) });
        const inline = await failureOf(runner.run({ connector: { type: 'MCP', command: process.execPath, args: ['-e', `require('fs').writeFileSync(${JSON.stringify(marker)}, 'ran')`] } }, { signal }));
        expect(inline).toMatchObject({ type: 'Connector.InvalidInput', message: expect.stringContaining('command') });
        expect(existsSync(marker)).toBe(false);
      } finally {
        rmSync(dir, { recursive: true, force: true });
        await service.registry.close();
        await store.close();
      }
    });
  });
});
