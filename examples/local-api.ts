// A small local "billing API" for the main job's example connector: real HTTP on 127.0.0.1.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Starts the example API; everything but `/health` requires `Authorization: Bearer <token>`. */
export async function startExampleApi(token: string): Promise<{ url: string; server: Server }> {
  const invoices: Array<{ id: number; customer: string; amount: number }> = [{ id: 1, customer: 'acme', amount: 120 }];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const send = (status: number, data: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(data));
      };
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname === '/health') return send(200, { ok: true });
      if (req.headers.authorization !== `Bearer ${token}`) return send(401, { error: 'missing or wrong bearer token' });
      if (url.pathname === '/invoices' && req.method === 'GET') {
        const customer = url.searchParams.get('customer');
        return send(200, customer ? invoices.filter((i) => i.customer === customer) : invoices);
      }
      if (url.pathname === '/invoices' && req.method === 'POST') {
        const input = JSON.parse(body || '{}') as { customer?: string; amount?: number };
        const invoice = { id: invoices.length + 1, customer: String(input.customer ?? 'unknown'), amount: Number(input.amount ?? 0) };
        invoices.push(invoice);
        return send(201, invoice);
      }
      return send(404, { error: `no route ${req.method} ${url.pathname}` });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}
