import { createRestConnector, parseDurationMs, restConnector, restSchema, type RestResponse } from '../../connectors/rest';
import type { ConnectorType, InvokeContext } from '../../connectors/types';
import { startTestHttpServer, unusedLocalUrl, type TestHttpServer } from '../fixtures/http-server';
import { failureOf, invokeContext as context } from '../support/connector-calls';
import { waitFor } from '../support/wait';

type Echo = { method: string; path: string; query: Record<string, unknown>; headers: Record<string, string>; body: string };

async function invoke(inputs: Record<string, unknown>, ctx: InvokeContext = context(), type: ConnectorType<typeof restSchema> = restConnector): Promise<RestResponse> {
  return (await type.invoke(restSchema.parse(inputs), ctx)) as RestResponse;
}

/** The failure an invoke ends with; fails the test when the call succeeds. */
const invokeFailure = (inputs: Record<string, unknown>, ctx: InvokeContext = context()) => failureOf(invoke(inputs, ctx));

describe('REST connector', () => {
  let server: TestHttpServer;

  beforeEach(async () => {
    server = await startTestHttpServer();
  });

  afterEach(async () => {
    await restConnector.close?.();
    await server.close();
  });

  describe('requests', () => {
    test('GET sends query parameters, repeating the key for arrays, and parses a JSON answer', async () => {
      const response = await invoke({ url: `${server.url}/items?fixed=1`, query: { tag: ['a', 'b'], limit: 10, active: true } });
      expect(response.status).toBe(200);
      expect(response.headers['content-type']).toBe('application/json');
      const echo = response.body as Echo;
      expect(echo.method).toBe('GET');
      expect(echo.path).toBe('/items');
      expect(server.requests[0].rawQuery).toBe('fixed=1&tag=a&tag=b&limit=10&active=true');
      expect(echo.query).toEqual({ fixed: '1', tag: ['a', 'b'], limit: '10', active: 'true' });
    });

    test('POST with an object sends JSON with content-type application/json', async () => {
      await invoke({ url: `${server.url}/invoices`, method: 'POST', data: { amount: 12.5, lines: [1, 2] } });
      const [received] = server.requests;
      expect(received.method).toBe('POST');
      expect(received.headers['content-type']).toBe('application/json');
      expect(JSON.parse(received.body)).toEqual({ amount: 12.5, lines: [1, 2] });
    });

    test('POST with a string sends it as text/plain', async () => {
      await invoke({ url: `${server.url}/notes`, method: 'POST', data: 'hello there' });
      expect(server.requests[0].headers['content-type']).toBe('text/plain; charset=utf-8');
      expect(server.requests[0].body).toBe('hello there');
    });

    test('data_format form sends an object url-encoded, repeating array keys', async () => {
      await invoke({ url: `${server.url}/token`, method: 'POST', data_format: 'form', data: { grant_type: 'client', scope: ['a b', 'c'] } });
      expect(server.requests[0].headers['content-type']).toBe('application/x-www-form-urlencoded');
      expect(server.requests[0].body).toBe('grant_type=client&scope=a+b&scope=c');
    });

    test('a content-type given in headers is kept', async () => {
      await invoke({ url: server.url, method: 'PUT', headers: { 'Content-Type': 'application/vnd.custom+json' }, data: { a: 1 } });
      expect(server.requests[0].headers['content-type']).toBe('application/vnd.custom+json');
    });

    test('base_url and path are joined with exactly one slash', async () => {
      await invoke({ base_url: `${server.url}/v1/`, path: '/invoices' });
      await invoke({ base_url: `${server.url}/v1`, path: 'invoices' });
      await invoke({ base_url: `${server.url}/v1` });
      expect(server.requests.map((r) => r.path)).toEqual(['/v1/invoices', '/v1/invoices', '/v1']);
    });

    test('a text answer is returned as text, an empty one as null', async () => {
      server.respondWith({ headers: { 'content-type': 'text/plain' }, body: 'pong' }, { status: 204 });
      expect((await invoke({ url: server.url })).body).toBe('pong');
      expect((await invoke({ url: server.url, method: 'DELETE' })).body).toBeNull();
    });

    test('a body declared JSON that does not parse fails naming response_format, without the body', async () => {
      server.respondWith({ headers: { 'content-type': 'application/json' }, body: '{"secret-body' });
      const failure = await invokeFailure({ url: server.url });
      expect(failure.message).toContain('response_format');
      expect(failure.message).not.toContain('secret-body');
      server.respondWith({ headers: { 'content-type': 'application/json' }, body: '{"secret-body' });
      expect((await invoke({ url: server.url, response_format: 'text' })).body).toBe('{"secret-body');
    });
  });

  describe('authentication', () => {
    test('basic auth arrives as an Authorization: Basic header', async () => {
      await invoke({ url: server.url, auth: { type: 'basic', username: 'ada', password: 'pa:ss' } });
      expect(server.requests[0].headers.authorization).toBe(`Basic ${Buffer.from('ada:pa:ss').toString('base64')}`);
    });

    test('bearer auth arrives as an Authorization: Bearer header, winning over a header of the same name', async () => {
      await invoke({ url: server.url, headers: { authorization: 'Bearer stale' }, auth: { type: 'bearer', token: 'tok-1' } });
      expect(server.requests[0].headers.authorization).toBe('Bearer tok-1');
    });

    test('api_key auth arrives in X-API-Key by default, or in the header given', async () => {
      await invoke({ url: server.url, auth: { type: 'api_key', value: 'key-1' } });
      await invoke({ url: server.url, auth: { type: 'api_key', header: 'X-Token', value: 'key-2' } });
      expect(server.requests[0].headers['x-api-key']).toBe('key-1');
      expect(server.requests[1].headers['x-token']).toBe('key-2');
    });

    test('credentials in the URL are sent as Basic auth and kept out of messages', async () => {
      server.respondWith({ status: 500 });
      const failure = await invokeFailure({ url: `http://ada:pw-SECRET@127.0.0.1:${server.port}/x` });
      expect(server.requests[0].headers.authorization).toBe(`Basic ${Buffer.from('ada:pw-SECRET').toString('base64')}`);
      expect(failure.message).not.toContain('pw-SECRET');
      expect(failure.message).not.toContain('ada');
    });
  });

  describe('failures', () => {
    test('a timeout gives a retryable Connector.External.Timeout failure', async () => {
      server.respondWith({ delayMs: 2_000 });
      const started = Date.now();
      const failure = await invokeFailure({ url: `${server.url}/slow`, timeout: '200ms' });
      expect(Date.now() - started).toBeLessThan(1_500);
      expect(failure.type).toBe('Connector.External.Timeout');
      expect(failure.nonRetryable).toBe(false);
      expect(failure.message).toContain(`REST GET ${server.url}/slow`);
    });

    test('404 is a non-retryable Connector.External.Http failure with the status in details', async () => {
      server.respondWith({ status: 404, body: { error: 'no such invoice' } });
      const failure = await invokeFailure({ url: `${server.url}/invoices/7`, method: 'post', data: { a: 1 } });
      expect(failure.type).toBe('Connector.External.Http');
      expect(failure.nonRetryable).toBe(true);
      expect(failure.details).toEqual([{ status: 404 }]);
      expect(failure.message).toBe(`REST POST ${server.url}/invoices/7 answered HTTP 404 Not Found`);
    });

    test('503 with Retry-After: 2 is retryable after 2000 ms', async () => {
      server.respondWith({ status: 503, headers: { 'Retry-After': '2' } });
      const failure = await invokeFailure({ url: server.url });
      expect(failure.type).toBe('Connector.External.Http');
      expect(failure.nonRetryable).toBe(false);
      expect(failure.nextRetryDelay).toBe(2_000);
    });

    test('429 is retryable', async () => {
      server.respondWith({ status: 429 });
      const failure = await invokeFailure({ url: server.url });
      expect(failure.nonRetryable).toBe(false);
      expect(failure.details).toEqual([{ status: 429 }]);
    });

    test('a refused connection is a retryable Connector.External.Network failure mentioning ECONNREFUSED', async () => {
      const failure = await invokeFailure({ url: `${await unusedLocalUrl()}/x` });
      expect(failure.type).toBe('Connector.External.Network');
      expect(failure.nonRetryable).toBe(false);
      expect(failure.message).toMatch(/connection was refused.*ECONNREFUSED/);
    });

    test('failure messages never carry the token, password, api key or query string', async () => {
      const secrets = ['tok-SECRET-1', 'pw-SECRET-2', 'key-SECRET-3', 'qs-SECRET-4', 'hdr-SECRET-5'];
      const refused = await unusedLocalUrl();
      const calls = [
        { url: `${server.url}/a?api_key=qs-SECRET-4`, auth: { type: 'bearer', token: 'tok-SECRET-1' } },
        { url: `${server.url}/b`, query: { key: 'qs-SECRET-4' }, auth: { type: 'basic', username: 'u', password: 'pw-SECRET-2' } },
        { url: `${server.url}/c`, headers: { Cookie: 'hdr-SECRET-5' }, auth: { type: 'api_key', value: 'key-SECRET-3' } },
        { url: `${refused}/d?api_key=qs-SECRET-4`, auth: { type: 'bearer', token: 'tok-SECRET-1' } },
      ];
      server.respondWith({ status: 500, body: 'tok-SECRET-1' }, { status: 401 }, { status: 400, body: { echo: 'key-SECRET-3' } });
      for (const call of calls) {
        const failure = await invokeFailure(call);
        const everything = `${failure.message} ${JSON.stringify(failure.details)} ${failure.stack}`;
        for (const secret of secrets) expect(everything).not.toContain(secret);
        expect(failure.message).not.toContain('?');
      }
    });
  });

  describe('connections', () => {
    test('two calls with the same poolKey reuse one TCP connection, and close(poolKey) closes it', async () => {
      const ctx = context({ poolKey: 'billing@3' });
      await invoke({ url: server.url }, ctx);
      await invoke({ url: server.url }, ctx);
      expect(server.requests[0].remotePort).toBe(server.requests[1].remotePort);
      expect(server.openConnections()).toBe(1);

      await restConnector.close?.('billing@3');
      await waitFor(() => server.openConnections() === 0);
      await invoke({ url: server.url }, ctx);
      expect(server.requests[2].remotePort).not.toBe(server.requests[0].remotePort);
    });

    test("calls alternating between two versions do not close each other's agents, and only the newest version's agent stays open", async () => {
      // Two calls at once per version: two connections per agent, four in all while they run.
      server.respondWith({ delayMs: 300 }, { delayMs: 300 }, { delayMs: 300 }, { delayMs: 300 });
      const answers = await Promise.all(['api@1', 'api@2', 'api@1', 'api@2'].map((poolKey) => invoke({ url: server.url }, context({ poolKey }))));
      expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200]);
      expect(new Set(server.requests.map((request) => request.remotePort)).size).toBe(4);
      await waitFor(() => server.openConnections() === 2);

      // Another retry of version 1 opens an agent again, closed as soon as the call ends.
      await invoke({ url: server.url }, context({ poolKey: 'api@1' }));
      await waitFor(() => server.openConnections() === 2);
      expect(restConnector.pools?.list()).toEqual([{ poolKey: 'api@2', leases: 0, retired: false }]);
    });

    test('the agent of a connector no call uses any more (deleted, say) is closed after the idle timeout', async () => {
      const shortLived = createRestConnector({ pools: { idleTimeoutMs: 200 } });
      try {
        await invoke({ url: server.url }, context({ poolKey: 'deleted_api@7' }), shortLived);
        expect(server.openConnections()).toBe(1);
        // Well before undici's own keep-alive timeout of about 4 s.
        await waitFor(() => server.openConnections() === 0, 1_500);
        expect(shortLived.pools?.list()).toEqual([]);
      } finally {
        await shortLived.close?.();
      }
    });

    test('inline calls (no poolKey) keep no connection open', async () => {
      await invoke({ url: server.url });
      await waitFor(() => server.openConnections() === 0);
    });

    test('aborting the signal cancels an in-flight request with the abort reason', async () => {
      server.respondWith({ delayMs: 5_000 });
      const controller = new AbortController();
      const reason = new Error('activity cancelled');
      const call = invoke({ url: server.url }, context({ signal: controller.signal }));
      await waitFor(() => server.requests.length === 1);
      controller.abort(reason);
      await expect(call).rejects.toBe(reason);
      await waitFor(() => server.openConnections() === 0);
    });

    test('a slow body is read with heartbeats at most once a second', async () => {
      await server.close();
      server = await startTestHttpServer(async (_request, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        for (let i = 0; i < 5; i++) {
          res.write(`chunk ${i};`);
          await new Promise((resolve) => setTimeout(resolve, 450));
        }
        res.end();
      });
      const heartbeat = jest.fn();
      const response = await invoke({ url: server.url }, context({ heartbeat }));
      expect(response.body).toBe('chunk 0;chunk 1;chunk 2;chunk 3;chunk 4;');
      expect(heartbeat.mock.calls.length).toBeGreaterThanOrEqual(1);
      expect(heartbeat.mock.calls.length).toBeLessThanOrEqual(3);
    });
  });

  describe('test()', () => {
    test('a 2xx health answer is ok, with the status, the URL and the latency', async () => {
      const result = await restConnector.test(restSchema.parse({ base_url: `${server.url}/v1`, path: 'x', health_path: '/health' }), context());
      expect(result.ok).toBe(true);
      expect(result.message).toMatch(new RegExp(`^HTTP 200 OK from ${server.url}/v1/health in \\d+ ms$`));
      expect(result.latency_ms).toBeGreaterThanOrEqual(0);
      expect(server.requests[0].method).toBe('GET');
    });

    test('a refused port gives ok false and a sentence, without throwing', async () => {
      const result = await restConnector.test(restSchema.parse({ url: await unusedLocalUrl() }), context());
      expect(result.ok).toBe(false);
      expect(result.message).toMatch(/^Could not reach .*the connection was refused.*ECONNREFUSED/);
    });

    test('401 says authentication was refused', async () => {
      server.respondWith({ status: 401 });
      const result = await restConnector.test(restSchema.parse({ url: server.url, auth: { type: 'bearer', token: 'tok-SECRET' } }), context());
      expect(result.ok).toBe(false);
      expect(result.message).toContain('refused authentication');
      expect(result.message).not.toContain('tok-SECRET');
    });

    test('another status is reported as such', async () => {
      server.respondWith({ status: 500 });
      const result = await restConnector.test(restSchema.parse({ url: server.url }), context());
      expect(result).toMatchObject({ ok: false, message: expect.stringContaining('HTTP 500 Internal Server Error') });
    });
  });

  describe('schema', () => {
    test('an unknown key is rejected by name', () => {
      const result = restSchema.safeParse({ url: 'http://x', bogus_key: 1 });
      expect(result.success).toBe(false);
      expect(JSON.stringify(result.error?.issues)).toContain('bogus_key');
    });

    test('neither url nor base_url is rejected, naming both', () => {
      const result = restSchema.safeParse({ path: '/x' });
      expect(result.success).toBe(false);
      expect(result.error?.issues[0].message).toContain('url');
      expect(result.error?.issues[0].message).toContain('base_url');
    });

    test('the method is case-insensitive and defaults to GET', () => {
      expect(restSchema.parse({ url: 'http://x', method: 'post' }).method).toBe('POST');
      expect(restSchema.parse({ url: 'http://x' }).method).toBe('GET');
      expect(restSchema.safeParse({ url: 'http://x', method: 'FETCH' }).success).toBe(false);
    });

    test('auth is a union on type, with X-API-Key as the default api_key header', () => {
      expect(restSchema.parse({ url: 'http://x', auth: { type: 'api_key', value: 'k' } }).auth).toEqual({ type: 'api_key', header: 'X-API-Key', value: 'k' });
      expect(restSchema.safeParse({ url: 'http://x', auth: { type: 'oauth', token: 't' } }).success).toBe(false);
    });

    test('timeouts are milliseconds or durations', () => {
      expect(parseDurationMs(250)).toBe(250);
      expect(parseDurationMs('500ms')).toBe(500);
      expect(parseDurationMs('30s')).toBe(30_000);
      expect(parseDurationMs('2m')).toBe(120_000);
      expect(restSchema.parse({ url: 'http://x' }).timeout).toBe(30_000);
      expect(restSchema.safeParse({ url: 'http://x', timeout: 'soon' }).success).toBe(false);
    });

    test('a duration under 1 ms is no duration: it would round to 0', () => {
      expect(parseDurationMs('1ms')).toBe(1);
      expect(parseDurationMs('0.001s')).toBe(1);
      expect(parseDurationMs(1)).toBe(1);
      for (const tooShort of ['0.4ms', '0.0004s', '0ms', 0.4, 0, -5]) {
        expect(parseDurationMs(tooShort)).toBeUndefined();
        const result = restSchema.safeParse({ url: 'http://x', timeout: tooShort });
        expect(result.error?.issues).toEqual([expect.objectContaining({ path: ['timeout'], message: expect.stringMatching(/^must be at least 1 ms/) })]);
      }
    });

    test('header values with line breaks are rejected without echoing them', () => {
      const result = restSchema.safeParse({ url: 'http://x', headers: { 'X-A': 'a\r\nX-Evil: 1' } });
      expect(result.success).toBe(false);
      expect(JSON.stringify(result.error?.issues)).not.toContain('Evil');
    });
  });

  describe('describeCall', () => {
    test('gives the method and the route of base_url + path, never the query', () => {
      expect(restConnector.describeCall?.({ base_url: 'http://h/v1', path: 'invoices', method: 'post', query: { k: 's' } })).toBe('POST /v1/invoices');
    });

    test('gives only the host of a whole url, whose path may be a webhook key, and never its credentials', () => {
      expect(restConnector.describeCall?.({ url: 'http://h:8080/hooks/T0/B0/key-123?key=secret' })).toBe('GET h:8080');
      expect(restConnector.describeCall?.({ url: 'https://u:pw-123@h/a' })).toBe('GET h');
    });

    test('is undefined for partial or unusable inputs, without throwing', () => {
      expect(restConnector.describeCall?.({})).toBeUndefined();
      expect(restConnector.describeCall?.({ url: 'not a url' })).toBeUndefined();
      expect(restConnector.describeCall?.({ url: 'http://h', method: 42 })).toBeUndefined();
    });
  });
});
