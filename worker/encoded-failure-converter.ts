// The failure converter of payload encryption. Temporal's TypeScript SDK takes a failure converter
// only as a module path (`DataConverter.failureConverterPath`), because workflow code turns its own
// errors into failures inside the sandbox and loads this module there. So it must stay
// sandbox-safe: it imports @temporalio/common and nothing else.
import { DefaultFailureConverter } from '@temporalio/common';

/**
 * Puts failure messages and stack traces into an `encodedAttributes` payload, which the payload
 * codecs (encryption) then encode; history keeps only the placeholder message `Encoded failure`.
 */
export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
