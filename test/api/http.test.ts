import { createBearerCheck, HttpError, TokenSet } from '../../api/http';

// The one bearer check both HTTP servers use.
describe('the servers\' bearer check', () => {
  test('a token gets the first access level it is listed under, and an unknown one none', () => {
    const tokens = new TokenSet<'write' | 'read'>([
      ['write', ['rw1', 'both']],
      ['read', ['ro1', 'both']],
    ]);
    expect(tokens.size).toBe(4);
    expect(['rw1', 'ro1', 'both', 'nope', ''].map((token) => tokens.levelOf(token))).toEqual(['write', 'read', 'write', undefined, undefined]);
  });

  test('a missing header and an unknown token are 401s naming the server, with a challenge of its realm', () => {
    const check = createBearerCheck({ tokens: [['valid', ['tok-http-1']]], server: 'this test server', realm: 'test-realm' });
    expect(check({ headers: { authorization: 'Bearer tok-http-1' } })).toBe('valid');
    const failure = (authorization?: string) => {
      try {
        check({ headers: { authorization } });
      } catch (err) {
        return err as HttpError;
      }
      throw new Error('the check let the request through');
    };
    const missing = failure(undefined);
    expect(missing).toBeInstanceOf(HttpError);
    expect({ status: missing.statusCode, type: missing.type, message: missing.message, headers: missing.headers }).toEqual({
      status: 401,
      type: 'Request.Unauthorized',
      message: 'this test server needs an Authorization: Bearer <token> header',
      headers: { 'www-authenticate': 'Bearer realm="test-realm"' },
    });
    const wrong = failure('Bearer tok-http-2');
    expect({ status: wrong.statusCode, message: wrong.message, headers: wrong.headers }).toEqual({
      status: 401,
      message: 'the bearer token is not valid for this test server',
      headers: { 'www-authenticate': 'Bearer realm="test-realm", error="invalid_token"' },
    });
  });
});
